"""Building and signing UTXO withdrawals: hot P2WPKH and M-of-N P2WSH multisig (embit).

A withdrawal's transaction is always a PSBT first: inputs (outpoints with their
value and script), the payment output, a change output back to the source. The
hot wallet signs and finalizes it at once; a multisig PSBT goes to offline signer
commands (:mod:`wallet.signer`) and is finalized once ``m`` signatures are in.

Every input signals replace-by-fee (sequence ``0xfffffffd``), so a stuck
transaction can be replaced by one spending the SAME inputs with a higher fee
(:func:`build_psbt` with a lower change): both can never confirm together.
"""

from __future__ import annotations

from dataclasses import dataclass

from embit import ec, script
from embit.finalizer import finalize_psbt
from embit.psbt import PSBT
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from wallet.addresses import ETH_NETWORKS, UTXO_NETWORKS, eth_address, to_checksum_address

RBF_SEQUENCE = 0xFFFFFFFD
DUST = 546
# Virtual sizes (vbytes) of the pieces of a SegWit transaction, for fee estimation.
TX_OVERHEAD_VB = 11
P2WPKH_INPUT_VB = 68
OUTPUT_VB = 43


def multisig_input_vb(m: int, n: int) -> int:
    """Virtual size of one P2WSH m-of-n input (signatures ~73 B, keys 34 B, witness / 4)."""
    witness = 1 + 1 + m * 73 + 1 + (3 + 34 * n)
    return 41 + (witness + 3) // 4


@dataclass(frozen=True)
class Source:
    """Where a withdrawal's coins come from: a hot P2WPKH key or an m-of-n P2WSH."""

    network: str
    pubkeys: tuple[str, ...]  # hex compressed; one for hot
    m: int = 1

    @property
    def is_multisig(self) -> bool:
        """True for an m-of-n source."""
        return len(self.pubkeys) > 1

    def witness_script(self) -> Script | None:
        """The sorted-multisig witness script (None for a single key)."""
        if not self.is_multisig:
            return None
        keys = sorted((ec.PublicKey.parse(bytes.fromhex(p)) for p in self.pubkeys), key=_sec)
        return script.multisig(self.m, keys)

    def script_pubkey(self) -> Script:
        """The source's output script."""
        ws = self.witness_script()
        if ws is not None:
            return script.p2wsh(ws)
        return script.p2wpkh(ec.PublicKey.parse(bytes.fromhex(self.pubkeys[0])))

    def address(self) -> str:
        """The source's address on its network (an Ethereum account for ``eth``)."""
        if self.network in ETH_NETWORKS:
            return eth_address(ec.PublicKey.parse(bytes.fromhex(self.pubkeys[0])))
        return str(self.script_pubkey().address(UTXO_NETWORKS[self.network]))

    def input_vb(self) -> int:
        """Virtual size of one input from this source."""
        return multisig_input_vb(self.m, len(self.pubkeys)) if self.is_multisig else P2WPKH_INPUT_VB


def _sec(k: ec.PublicKey) -> bytes:
    return bytes(k.sec())


def check_address(address: str, network: str) -> None:
    """ValueError unless ``address`` is a payable address of ``network``."""
    if network in ETH_NETWORKS:
        to_checksum_address(address)
    else:
        address_script(address, network)


def address_script(address: str, network: str) -> Script:
    """The output script of ``address`` (ValueError if not an address of ``network``)."""
    hrp = str(UTXO_NETWORKS[network]["bech32"])
    if not address.lower().startswith(hrp + "1"):
        raise ValueError(f"{address!r} is not a {network} SegWit address")
    try:
        return script.address_to_scriptpubkey(address)
    except Exception as exc:
        raise ValueError(f"invalid address {address!r}: {exc}") from None


@dataclass(frozen=True)
class Plan:
    """Chosen inputs, the network fee and the change (0: no change output)."""

    inputs: tuple[tuple[str, int], ...]
    fee: int
    change: int


def plan(src: Source, coins: list[tuple[str, int]], amount: int, fee_rate: int) -> Plan | None:
    """Pick coins (largest first) paying ``amount`` + fee at ``fee_rate`` sat/vB; None if short."""
    chosen: list[tuple[str, int]] = []
    total = 0
    for c in sorted(coins, key=lambda c: (-c[1], c[0])):
        chosen.append(c)
        total += c[1]
        fee = fee_rate * (TX_OVERHEAD_VB + len(chosen) * src.input_vb() + 2 * OUTPUT_VB)
        if total >= amount + fee:
            change = total - amount - fee
            if change < DUST:  # too small to keep: it goes to the miner
                return Plan(tuple(chosen), fee + change, 0)
            return Plan(tuple(chosen), fee, change)
    return None


def build_psbt(
    src: Source, inputs: tuple[tuple[str, int], ...], to: str, amount: int, change: int
) -> PSBT:
    """An unsigned PSBT: ``inputs`` -> ``amount`` to ``to`` (+ ``change`` back to the source)."""
    spk = src.script_pubkey()
    ins = []
    for outpoint, _ in inputs:
        txid, index = outpoint.split(":")
        ins.append(TransactionInput(bytes.fromhex(txid), int(index), sequence=RBF_SEQUENCE))
    outs = [TransactionOutput(amount, address_script(to, src.network))]
    if change:
        outs.append(TransactionOutput(change, spk))
    psbt = PSBT(Transaction(vin=ins, vout=outs))
    ws = src.witness_script()
    for i, (_, value) in enumerate(inputs):
        psbt.inputs[i].witness_utxo = TransactionOutput(value, spk)
        if ws is not None:
            psbt.inputs[i].witness_script = ws
    return psbt


def sign_hot(psbt: PSBT, key: ec.PrivateKey) -> bytes:
    """Sign every input with the hot key and finalize; the raw transaction."""
    if psbt.sign_with(key) != len(psbt.inputs):
        raise ValueError("the hot key does not own every input")
    return finalize(psbt)


def finalize(psbt: PSBT) -> bytes:
    """The raw transaction of a fully signed PSBT (ValueError if signatures are missing)."""
    tx = finalize_psbt(psbt)
    if tx is None:
        raise ValueError("not enough signatures")
    return bytes(tx.serialize())


def signatures(psbt: PSBT) -> int:
    """The fewest partial signatures any input has."""
    return min((len(i.partial_sigs) for i in psbt.inputs), default=0)


def combine(base: PSBT, other: PSBT) -> PSBT:
    """Add ``other``'s signatures to ``base`` (ValueError if it is another transaction)."""
    if base.tx.txid() != other.tx.txid():
        raise ValueError("the signed PSBT is not this withdrawal's transaction")
    for mine, theirs in zip(base.inputs, other.inputs, strict=True):
        mine.partial_sigs.update(theirs.partial_sigs)
    return base


def txid_of(raw: bytes) -> str:
    """The txid of a raw transaction."""
    return str(Transaction.parse(raw).txid().hex())


def spends_of(psbt: PSBT) -> list[str]:
    """The outpoints a PSBT spends (``txid:vout``)."""
    return [f"{i.txid.hex()}:{i.vout}" for i in psbt.tx.vin]


def build_sweep_psbt(
    account_xpub: str,
    network: str,
    inputs: list[tuple[str, int, int]],
    to: str,
    fee_rate: int,
) -> tuple[PSBT, int] | None:
    """A PSBT sweeping deposit coins (outpoint, amount, address index) of the account
    ``account_xpub`` to ``to``, with each input's BIP32 derivation so the offline
    signer holding the xprv can sign; (psbt, fee), None if the fee eats it all."""
    from embit import bip32
    from embit.psbt import DerivationPath

    acct = bip32.HDKey.from_string(account_xpub)
    fee = fee_rate * (TX_OVERHEAD_VB + len(inputs) * P2WPKH_INPUT_VB + OUTPUT_VB)
    total = sum(v for _, v, _ in inputs)
    if total - fee < DUST:
        return None
    ins = []
    for outpoint, _, _ in inputs:
        txid, index = outpoint.split(":")
        ins.append(TransactionInput(bytes.fromhex(txid), int(index), sequence=RBF_SEQUENCE))
    psbt = PSBT(
        Transaction(vin=ins, vout=[TransactionOutput(total - fee, address_script(to, network))])
    )
    for i, (_, value, idx) in enumerate(inputs):
        pub = acct.derive([0, idx]).key
        psbt.inputs[i].witness_utxo = TransactionOutput(value, script.p2wpkh(pub))
        psbt.inputs[i].bip32_derivations[pub] = DerivationPath(acct.my_fingerprint, [0, idx])
    return psbt, fee
