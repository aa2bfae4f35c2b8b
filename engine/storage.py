"""The storage interface: the only way the core touches the disk.

Production plugs in :class:`FileStorage` (real files in one directory, fdatasync);
the simulator (``sim.disk.SimDisk``) plugs in an in-memory disk that knows which
bytes are durable and injects faults.  Names are flat file names inside one
directory; there are no subdirectories.

Durability contract (what callers may rely on):
- ``append``/``write_at`` data is durable only after ``sync(name)`` returns.
- A new name, a ``rename`` or a ``remove`` is durable only after ``sync_dir()``.
- ``rename`` replaces ``dst`` atomically (readers see old or new, never a mix).
- Any call may raise :class:`StorageError` (EIO, ENOSPC, short write); the caller
  must then treat the state of the unsynced bytes as unknown.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class StorageError(OSError):
    """An I/O failure of the storage (EIO, ENOSPC, short write...)."""


@contextmanager
def _io(what: str) -> Iterator[None]:
    """Turn an OSError raised inside into a StorageError naming ``what``."""
    try:
        yield
    except StorageError:
        raise
    except OSError as e:
        raise StorageError(e.errno, f"{what}: {e.strerror}") from e


class Storage(Protocol):
    """Flat directory of files with explicit durability (see module docstring)."""

    def list(self) -> list[str]:
        """Names of the files that exist (sorted)."""
        ...

    def size(self, name: str) -> int:
        """Current size of ``name`` in bytes (durable or not)."""
        ...

    def read(self, name: str, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes of ``name`` from ``offset`` (short at end of file)."""
        ...

    def append(self, name: str, data: bytes) -> None:
        """Append ``data`` to ``name``, creating it if missing."""
        ...

    def write_at(self, name: str, offset: int, data: bytes) -> None:
        """Overwrite bytes of ``name`` at ``offset`` (extends the file if needed)."""
        ...

    def sync(self, name: str) -> None:
        """Make the data of ``name`` durable (fdatasync)."""
        ...

    def truncate(self, name: str, size: int) -> None:
        """Cut ``name`` to ``size`` bytes (durable after ``sync(name)``)."""
        ...

    def rename(self, src: str, dst: str) -> None:
        """Atomically rename ``src`` to ``dst``, replacing ``dst`` (durable after ``sync_dir``)."""
        ...

    def remove(self, name: str) -> None:
        """Delete ``name`` (durable after ``sync_dir``)."""
        ...

    def sync_dir(self) -> None:
        """Make creations, renames and removals durable (fsync of the directory)."""
        ...


class FileStorage:
    """:class:`Storage` over real files in one directory.

    File descriptors stay open per name so that appends and syncs do not pay an
    open/close each; they are closed on rename/remove/close.

    ``read_only``: the directory must exist, files are opened ``O_RDONLY`` and
    never created, and every write raises :class:`StorageError` (``EROFS``):
    replays work on read-only media and cannot change what they read.
    """

    def __init__(self, directory: str, *, read_only: bool = False) -> None:
        self.directory = directory
        self.read_only = read_only
        if read_only:
            if not os.path.isdir(directory):
                raise StorageError(errno.ENOENT, f"{directory}: no such directory")
        else:
            os.makedirs(directory, exist_ok=True)
        self._fds: dict[str, int] = {}

    def _path(self, name: str) -> str:
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"bad storage name {name!r}")
        return os.path.join(self.directory, name)

    def _fd(self, name: str) -> int:
        fd = self._fds.get(name)
        if fd is None:
            flags = os.O_RDONLY if self.read_only else os.O_RDWR | os.O_CREAT
            with _io(f"open {name}"):
                fd = os.open(self._path(name), flags, 0o644)
            self._fds[name] = fd
        return fd

    def direct_io(self, name: str) -> tuple[int, None] | None:
        """``(fd, None)``: the open descriptor of ``name`` for a caller that writes,
        reads and fdatasyncs it itself (the compiled turn's journal write), with the
        same durability contract; None when read-only.  (The second item is the
        histogram its syncs are timed into: none here, see ``TimedStorage``.)

        Raises
        ------
        StorageError
            ``name`` cannot be opened.
        """
        if self.read_only:
            return None
        return self._fd(name), None

    def direct_fds(self) -> dict[str, int] | None:
        """The live map name -> open descriptor, for a caller that writes an
        already-open file itself (the compiled turn's event-log append: a file
        absent from the map, or removed from it when closed, goes through
        :meth:`write_at`); None when read-only or when a subclass overrides
        :meth:`write_at` (fault injection must see every write)."""
        if self.read_only or type(self).write_at is not FileStorage.write_at:
            return None
        return self._fds

    def _writable(self, what: str) -> None:
        if self.read_only:
            raise StorageError(errno.EROFS, f"{what}: storage opened read-only")

    def _drop(self, name: str) -> None:
        fd = self._fds.pop(name, None)
        if fd is not None:
            os.close(fd)

    def list(self) -> list[str]:
        """Names of the regular files in the directory, sorted."""
        return sorted(n for n in os.listdir(self.directory) if os.path.isfile(self._path(n)))

    def size(self, name: str) -> int:
        """Size of ``name`` in bytes."""
        return os.stat(self._path(name)).st_size

    def read(self, name: str, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset``."""
        # try/except rather than the _io context manager: this runs on every journal
        # batch (read-back), where a generator-based context costs microseconds.
        try:
            return os.pread(self._fd(name), length, offset)
        except StorageError:
            raise
        except OSError as e:
            raise StorageError(e.errno, f"read {name}: {e.strerror}") from e

    def append(self, name: str, data: bytes) -> None:
        """Append ``data``; a short write raises :class:`StorageError`."""
        self._writable(f"append {name}")
        fd = self._fd(name)
        self.write_at(name, os.fstat(fd).st_size, data)

    def write_at(self, name: str, offset: int, data: bytes) -> None:
        """Write all of ``data`` at ``offset``."""
        if self.read_only:
            self._writable(f"write {name}")
        fd = self._fd(name)
        try:
            n = os.pwrite(fd, data, offset)
            if n == len(data):
                return  # the usual case: one call, no memoryview (hot path)
            view = memoryview(data)
            done = n
            while done < len(view):
                if n <= 0:
                    raise StorageError(errno.EIO, f"short write to {name}")
                n = os.pwrite(fd, view[done:], offset + done)
                done += n
        except StorageError:
            raise
        except OSError as e:
            raise StorageError(e.errno, f"write {name}: {e.strerror}") from e

    def sync(self, name: str) -> None:
        """fdatasync ``name``."""
        if self.read_only:
            self._writable(f"fdatasync {name}")
        try:
            os.fdatasync(self._fd(name))
        except StorageError:
            raise
        except OSError as e:
            raise StorageError(e.errno, f"fdatasync {name}: {e.strerror}") from e

    def truncate(self, name: str, size: int) -> None:
        """Cut ``name`` to ``size`` bytes."""
        self._writable(f"truncate {name}")
        with _io(f"truncate {name}"):
            os.ftruncate(self._fd(name), size)

    def rename(self, src: str, dst: str) -> None:
        """Atomic rename (os.replace)."""
        self._writable(f"rename {src}")
        self._drop(src)
        self._drop(dst)
        with _io(f"rename {src} -> {dst}"):
            os.replace(self._path(src), self._path(dst))

    def remove(self, name: str) -> None:
        """Delete ``name``."""
        self._writable(f"remove {name}")
        self._drop(name)
        with _io(f"remove {name}"):
            os.unlink(self._path(name))

    def sync_dir(self) -> None:
        """fsync the directory so names are durable."""
        self._writable("fsync directory")
        with _io(f"fsync directory {self.directory}"):
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def close(self) -> None:
        """Close every open file descriptor."""
        for name in list(self._fds):
            self._drop(name)
