"""The wallet: chain adapters, watch-only deposit addresses and the deposit scanner.

See docs/wallet.md.
"""
