"""The offline signer: `bursa wallet sign-psbt --key FILE --in PSBT --out PSBT`.

It runs on a separate host with one multisig key (an encrypted key file,
:mod:`wallet.keys`) and knows nothing of the online database. It judges the
PSBT itself: every input must be the multisig its key belongs to, the payment is
every output NOT returning to that multisig, and it refuses a payment above the
key file's ``max_tx`` or one that would take its own 24-hour total (a ledger
file beside the key, ``FILE.ledger``) above ``max_daily``. Editing the online
database cannot raise these limits. A fee bump (a replacement spending exactly the
same inputs) is re-signed the same way; since only one of them can ever confirm, the
ledger counts them once (:func:`signed_total`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from embit import script
from embit.psbt import PSBT

from wallet.keys import KeyFile

DAY_NS = 86_400 * 10**9


class SignerRefusedError(ValueError):
    """The signer will not sign this PSBT (the message says why)."""


def payment_of(psbt: PSBT, kf: KeyFile) -> tuple[str, int]:
    """(unsigned txid, amount leaving the multisig); refuses inputs that are not ours."""
    if not psbt.inputs:
        raise SignerRefusedError("no inputs")
    mine = kf.key.get_public_key().sec()
    spk = None
    for i, inp in enumerate(psbt.inputs):
        ws, utxo = inp.witness_script, inp.witness_utxo
        if ws is None or utxo is None:
            raise SignerRefusedError(f"input {i}: no witness script or witness utxo")
        if script.p2wsh(ws).data != utxo.script_pubkey.data:
            raise SignerRefusedError(f"input {i}: witness script does not match the output")
        if mine not in ws.data:
            raise SignerRefusedError(f"input {i}: not a multisig of this key")
        if spk is not None and utxo.script_pubkey.data != spk:
            raise SignerRefusedError("inputs from more than one multisig")
        spk = utxo.script_pubkey.data
    paid = sum(int(o.value) for o in psbt.tx.vout if o.script_pubkey.data != spk)
    return str(psbt.tx.txid().hex()), paid


def _ledger(path: Path, now_ns: int) -> list[tuple[str, int, frozenset[str]]]:
    """(txid, amount, inputs spent) of what this signer signed in the last 24 hours."""
    out: list[tuple[str, int, frozenset[str]]] = []
    if path.exists():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if now_ns - int(row["ts_ns"]) < DAY_NS:
                spends = frozenset(str(i) for i in row.get("inputs", ()))
                out.append((str(row["txid"]), int(row["amount"]), spends))
    return out


def signed_total(rows: list[tuple[str, int, frozenset[str]]]) -> int:
    """What the signed transactions can pay out at most, together.

    Transactions spending exactly the same inputs are one payment and its
    replacements (a fee bump): at most one of them can ever confirm, so they count
    once, at the largest amount. Anything else counts in full, including partial
    overlaps (two transactions that each conflict with a third may both confirm):
    over-counting only makes the signer stricter, never looser.
    """
    top: dict[frozenset[str] | str, int] = {}
    for txid, amount, spends in rows:
        key: frozenset[str] | str = spends or txid
        top[key] = max(top.get(key, 0), amount)
    return sum(top.values())


def sweep_check(psbt: PSBT, kf: KeyFile) -> None:
    """A deposit sweep: every input one of this xprv's P2WPKH addresses (by its BIP32
    derivation), every output to an address of ``sweep_to``."""
    from embit import bip32

    from wallet.addresses import UTXO_NETWORKS

    root = bip32.HDKey.from_string(kf.xprv)
    allowed = {a.lower() for a in kf.sweep_to}
    params = UTXO_NETWORKS[kf.network]
    for i, inp in enumerate(psbt.inputs):
        utxo = inp.witness_utxo
        ders = [
            (pub, d)
            for pub, d in inp.bip32_derivations.items()
            if d.fingerprint == root.my_fingerprint
        ]
        if utxo is None or len(ders) != 1:
            raise SignerRefusedError(f"input {i}: not one of this key's deposit addresses")
        pub, d = ders[0]
        if root.derive(d.derivation).key.sec() != pub.sec():
            raise SignerRefusedError(f"input {i}: derivation does not match its key")
        if script.p2wpkh(pub).data != utxo.script_pubkey.data:
            raise SignerRefusedError(f"input {i}: not this key's P2WPKH output")
    for o in psbt.tx.vout:
        if str(o.script_pubkey.address(params)).lower() not in allowed:
            raise SignerRefusedError("a sweep may only pay the configured hot wallet")


def sign(psbt_text: str, kf: KeyFile, ledger: Path, now_ns: int | None = None) -> str:
    """Sign a base64 PSBT within the key's limits; the signed PSBT (base64)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    try:
        psbt = PSBT.from_string(psbt_text.strip())
    except Exception as exc:
        raise SignerRefusedError(f"not a PSBT: {exc}") from None
    if kf.xprv:
        from embit import bip32

        sweep_check(psbt, kf)
        if psbt.sign_with(bip32.HDKey.from_string(kf.xprv)) != len(psbt.inputs):
            raise SignerRefusedError("could not sign every input")
        return str(psbt.to_string())
    txid, paid = payment_of(psbt, kf)
    if kf.max_tx and paid > kf.max_tx:
        raise SignerRefusedError(f"payment {paid} exceeds this signer's max_tx {kf.max_tx}")
    spends = frozenset(f"{i.txid.hex()}:{i.vout}" for i in psbt.tx.vin)
    signed = _ledger(ledger, now_ns)
    before = signed_total(signed)
    after = signed_total([*signed, (txid, paid, spends)])
    if kf.max_daily and after > kf.max_daily:
        raise SignerRefusedError(
            f"payment {paid} + {before} signed in 24h exceeds this signer's max_daily "
            f"{kf.max_daily}"
        )
    if psbt.sign_with(kf.key) != len(psbt.inputs):
        raise SignerRefusedError("could not sign every input")
    if txid not in {t for t, _, _ in signed}:
        row = {"ts_ns": now_ns, "txid": txid, "amount": paid, "inputs": sorted(spends)}
        with open(ledger, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
    return str(psbt.to_string())


def sign_eth(request_text: str, kf: KeyFile, ledger: Path, now_ns: int | None = None) -> str:
    """Sign an Ethereum multisig request (:mod:`wallet.ethmultisig`) within the key's
    limits; the signature as JSON ``{"signer": address, "signature": hex}``.

    The request must name this key's contract and chain id; the payment is decoded
    from the call itself (ETH, or an ERC-20 ``transfer``; anything else is refused).
    The ledger counts a request once per (contract, contract nonce): the contract
    executes each nonce at most once, so signing it again (a gas-price bump of the
    outer transaction re-uses the signatures anyway) never uses the limit twice.
    """
    from wallet import ethmultisig

    now_ns = time.time_ns() if now_ns is None else now_ns
    req = ethmultisig.Request.from_json(request_text)
    if not kf.contract or req.contract.lower() != kf.contract.lower():
        raise SignerRefusedError(f"request for contract {req.contract}, not this key's")
    if req.chain_id != kf.chain_id:
        raise SignerRefusedError(f"request for chain id {req.chain_id}, not {kf.chain_id}")
    try:
        _token, _to, paid = req.payment()
    except ValueError as exc:
        raise SignerRefusedError(str(exc)) from None
    if req.gas_limit > ethmultisig.INNER_GAS:
        raise SignerRefusedError(f"gas limit {req.gas_limit} above {ethmultisig.INNER_GAS}")
    if kf.max_tx and paid > kf.max_tx:
        raise SignerRefusedError(f"payment {paid} exceeds this signer's max_tx {kf.max_tx}")
    slot = f"{req.contract.lower()}:{req.nonce}"
    signed = _ledger(ledger, now_ns)
    # one contract nonce is one "input": only one of its messages can ever execute
    before = signed_total(signed)
    after = signed_total([*signed, (slot, paid, frozenset({slot}))])
    if kf.max_daily and after > kf.max_daily:
        raise SignerRefusedError(
            f"payment {paid} + {before} signed in 24h exceeds this signer's max_daily "
            f"{kf.max_daily}"
        )
    signature = ethmultisig.sign(req, kf.key)
    if slot not in {t for t, _, _ in signed}:
        row = {"ts_ns": now_ns, "txid": slot, "amount": paid, "inputs": [slot]}
        with open(ledger, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
    from wallet.addresses import eth_address

    return json.dumps({"signer": eth_address(kf.key.get_public_key()), "signature": signature})
