"""One way for the engine tests to serve a CoreServer on loopback in a thread."""

from __future__ import annotations

import threading
from typing import Any

from engine.corelike import CoreClass
from engine.server import CoreServer, ServerConfig

LOOPBACK = "tcp://127.0.0.1:*"


def loopback_config(data_dir: str, **overrides: Any) -> ServerConfig:
    """A ServerConfig whose every socket binds a free loopback port."""
    return ServerConfig(
        data_dir=data_dir,
        trade_endpoint=LOOPBACK,
        fund_endpoint=LOOPBACK,
        admin_endpoint=LOOPBACK,
        pub_endpoint=LOOPBACK,
        replay_endpoint=LOOPBACK,
        **overrides,
    )


class ServedCore:
    """A CoreServer running ``run()`` in a daemon thread; ``rc`` gets its exit code."""

    def __init__(self, cfg: ServerConfig, core_cls: CoreClass | None = None) -> None:
        self.server = CoreServer(cfg, core_cls=core_cls)
        self.rc: list[int] = []
        self.thread = threading.Thread(
            target=lambda: self.rc.append(self.server.run()), daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        self.rc.append(self.server.run())

    def endpoint(self, role: str = "trade") -> str:
        """The bound address of ``role``'s socket."""
        return str(self.server.endpoints[role])

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the loop to stop and wait for the thread (asserts it ended)."""
        self.server.stopping = True
        self.thread.join(timeout=timeout_s)
        assert not self.thread.is_alive()
