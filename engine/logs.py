"""One logging setup for every bursa process: plain text or one JSON object per line.

    bursa core --log-format json        # {"ts": ..., "level": ..., "process": "core", ...}

:func:`add_arguments` gives a parser ``--log-format json|text`` (default: the
environment variable ``BURSA_LOG_FORMAT``, else ``text``) and ``--log-level``;
:func:`setup` installs the handler on the root logger.  In JSON each line holds
``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``process``, ``logger``,
``msg``, and ``seq`` when the call passed one (``log.info(..., extra={"seq": n})``:
the core sequence number the line is about), plus ``exc`` with the traceback of an
exception.  Uncaught exceptions and warnings go through the same handler, so a log
file written under ``bursa run`` is JSON on every line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from types import TracebackType
from typing import Any, TextIO

ENV_FORMAT = "BURSA_LOG_FORMAT"
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(name)s %(message)s"


def default_format() -> str:
    """``$BURSA_LOG_FORMAT`` when it names a format, else ``text``."""
    value = os.environ.get(ENV_FORMAT, "text")
    return value if value in FORMATS else "text"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, process, logger, msg, [seq], [exc]."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (no newline inside: tracebacks are escaped)."""
        secs = time.gmtime(record.created)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", secs) + f".{int(record.msecs):03d}Z"
        out: dict[str, Any] = {
            "ts": ts,
            "level": record.levelname.lower(),
            "process": self.process,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        seq = getattr(record, "seq", None)
        if seq is not None:
            out["seq"] = int(seq)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def json_line(process: str, msg: str, level: str = "info", **fields: Any) -> bytes:
    """One JSON log line (with its newline) written without the logging module, e.g.
    by the supervisor into a child's log file."""
    rec = logging.LogRecord(process, logging.getLevelName(level.upper()), "", 0, msg, None, None)
    for k, v in fields.items():
        setattr(rec, k, v)
    return (JsonFormatter(process).format(rec) + "\n").encode()


def add_arguments(p: argparse.ArgumentParser, *, level: bool = True) -> None:
    """``--log-format`` (and ``--log-level`` unless the parser has its own)."""
    p.add_argument(
        "--log-format",
        choices=FORMATS,
        default=None,
        help=f"log lines as text or one JSON object per line (default ${ENV_FORMAT} or text)",
    )
    if level:
        p.add_argument("--log-level", default="INFO")


def setup(
    process: str, fmt: str | None = None, level: str = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """Log to ``stream`` (stderr) in ``fmt`` (None: :func:`default_format`) for ``process``.

    Replaces the root logger's handlers; returns the one installed.
    """
    fmt = fmt or default_format()
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, not {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(process))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    if fmt == "json":
        crash = logging.getLogger(f"bursa.{process}")

        def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
            # An uncaught exception is one JSON line too (not a bare traceback).
            crash.critical("uncaught %s: %s", kind.__name__, exc, exc_info=(kind, exc, tb))

        sys.excepthook = hook
    return handler
