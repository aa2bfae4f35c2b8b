"""`bursa run`: the whole local exchange under one supervisor.

Modules: :mod:`config` (one TOML file, env overrides, ``bursa config show``),
:mod:`children` (the table of child processes and one child's lifecycle),
:mod:`market` (the demo market created on first start), :mod:`traders` (the demo
order flow, itself a supervised child), :mod:`supervisor` (``bursa run``).
"""
