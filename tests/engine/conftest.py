"""Fixtures for the durability tests: every storage test runs on real files AND SimDisk."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest

from engine.clock import ManualClock
from engine.storage import FileStorage, Storage
from sim.disk import SimDisk
from tests.variantbuild import pytest_configure, pytest_pyfunc_call  # noqa: F401  (hooks)

StorageFactory = Callable[[], Storage]


@pytest.fixture(params=["file", "sim"])
def new_storage(request, tmp_path) -> Iterator[StorageFactory]:
    """A factory of empty storages of one kind (each call: a fresh directory / disk)."""
    made: list[FileStorage] = []
    counter = iter(range(1_000_000))

    def make() -> Storage:
        if request.param == "file":
            fs = FileStorage(str(tmp_path / f"d{next(counter)}"))
            made.append(fs)
            return fs
        return SimDisk(random.Random(0), ManualClock())

    yield make
    for fs in made:
        fs.close()


@pytest.fixture
def storage(new_storage: StorageFactory) -> Storage:
    """One empty storage (real files or SimDisk)."""
    return new_storage()
