"""The supervisor's configuration: one TOML file, documented defaults, env overrides.

Sources, weakest first: :data:`DEFAULTS`, the TOML file (``--config``, else
``./bursa.toml`` when it exists), environment variables ``BURSA_<SECTION>_<KEY>``
(e.g. ``BURSA_RUN_SUMMARY_EVERY_S=2``, ``BURSA_CORE_MODE=buffered``; the value is
parsed as a TOML value, a bare word is a string), then command-line flags.

Sections: ``[run]`` is the supervisor's own; ``[core]``, ``[marketdata]``,
``[clearing]``, ``[wallet]``, ``[gateway]`` are passed through to each child's own config file
(the core reads it as ``[core_server]``); ``[chain]`` and ``[traders]`` become the
flags of the simulated chain and the demo traders.  Endpoints, data paths and
databases are set by the supervisor (flags to the children win over the file).

``bursa config show [--config FILE]`` prints the effective configuration as TOML.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

ENV_PREFIX = "BURSA_"
DEFAULT_FILE = "bursa.toml"

# Every key the supervisor reads, with its default; the comments are the reference
# (docs/operations.md shows this table through `bursa config show`).
DEFAULTS: dict[str, dict[str, Any]] = {
    "run": {
        "data_dir": "data",  # everything lives under it: core/, clearing/, wallet/, gateway/, run/
        "summary_every_s": 5,  # plain-text summary period without a terminal
        "backoff_initial_ms": 500,  # first restart delay of a crashed child
        "backoff_max_ms": 10_000,  # the delay doubles per crash up to this bound
        "healthy_after_s": 30,  # a child up this long gets its delay reset
        "ready_timeout_s": 60,  # wait for a child's ready line
        "stop_timeout_s": 30,  # wait for a child's exit after SIGTERM, then SIGKILL
        "demo": True,  # run the demo traders (market maker + takers)
        "dashboard": "auto",  # auto (rich view on a terminal, else summary lines) | on | off
        "metrics_port": 9150,  # Prometheus /metrics on 127.0.0.1 (0: a free port, -1: off)
    },
    "core": {"mode": "fsync"},  # [core_server] keys of `bursa core` (engine/server.py)
    "marketdata": {},  # keys of `bursa marketdata` (docs/marketdata.md)
    "clearing": {},  # keys of `bursa clearing run` (docs/clearing.md)
    "wallet": {"poll_ms": 500},  # keys of `bursa wallet run` (docs/wallet.md)
    "gateway": {},  # [gateway] keys of `bursa gateway` (docs/gateway.md)
    # [api] keys of `bursa api` (docs/api.md); port 0 = a free port (see its ready line)
    "api": {"port": 0, "assets": {"1": "BTC", "2": "USDT"}},
    # the simulated chain (python -m wallet.simrpc); the demo pays a deposit every
    # deposit_every_s (bursa/exchange/payments.py; 0: only the first ones)
    "chain": {"seed": 1, "block_ms": 2000, "deposit_every_s": 20},
    "traders": {"cycles_per_s": 10, "seed": 1},  # demo order flow (bursa/exchange/traders.py)
}


class ConfigError(ValueError):
    """A config file or environment variable that cannot be used."""


def _env_value(raw: str) -> Any:
    """An environment value as TOML (``2`` -> int, ``true`` -> bool), else the string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def load(path: str | None = None, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Defaults < TOML file < environment; raises :class:`ConfigError` on bad input."""
    cfg = copy.deepcopy(DEFAULTS)
    env = dict(os.environ if environ is None else environ)
    if path is None and Path(DEFAULT_FILE).is_file():
        path = DEFAULT_FILE
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"{path}: {e}") from e
        for section, values in data.items():
            if section not in cfg or not isinstance(values, dict):
                raise ConfigError(f"{path}: unknown section [{section}]")
            cfg[section].update(values)
    for section in cfg:
        prefix = f"{ENV_PREFIX}{section.upper()}_"
        for name, raw in env.items():
            if name.startswith(prefix):
                cfg[section][name[len(prefix) :].lower()] = _env_value(raw)
    for key in cfg["run"]:
        if key not in DEFAULTS["run"]:
            raise ConfigError(f"unknown [run] key {key!r}")
    for key, default in DEFAULTS["run"].items():
        if type(cfg["run"][key]) is not type(default):
            raise ConfigError(f"[run] {key} must be a {type(default).__name__}")
    if cfg["run"]["dashboard"] not in ("auto", "on", "off"):
        raise ConfigError("[run] dashboard must be auto, on or off")
    return cfg


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise ConfigError(f"cannot write {type(v).__name__} as TOML")


def dumps(data: dict[str, Any]) -> str:
    """A small TOML writer for config dicts (tables of scalars, lists, nested tables)."""
    out: list[str] = []

    def table(name: str, body: dict[str, Any]) -> None:
        out.append(f"[{name}]")
        subs = {k: v for k, v in body.items() if isinstance(v, dict)}
        out.extend(f"{k} = {_toml_value(v)}" for k, v in body.items() if k not in subs)
        out.append("")
        for k, v in subs.items():
            table(f"{name}.{k}", v)

    for name, body in data.items():
        table(name, body)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """``bursa config show``: print the effective configuration as TOML."""
    p = argparse.ArgumentParser(prog="bursa config", description="the effective configuration")
    p.add_argument("action", choices=("show",))
    p.add_argument("--config", help=f"TOML file (default ./{DEFAULT_FILE} if present)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        cfg = load(args.config)
    except ConfigError as e:
        print(f"bursa config: {e}", file=sys.stderr)
        return 2
    print(dumps(cfg), end="")
    return 0
