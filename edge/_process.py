"""Which OSED processes are alive, as the kernel tells it, and one expiry pass at a time.

A process that journals device writes holds an exclusive ``flock`` on a file of its own for
as long as it lives. The kernel drops the lock when the process ends, however it ends
(SIGKILL, a crash, power loss), so another process can tell a write that is still in flight
from one whose writer is gone without trusting pids or clocks.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

_TOKEN = re.compile(r"^\d+\.[0-9a-f]{8}$")


class ProcessMark:
    """This process's token on the intents it journals, and liveness of other tokens.

    ``directory`` None (an in-memory store): no other process can share the store, so only
    our own token is alive."""

    def __init__(self, directory: Path | None) -> None:
        self.token = f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self.directory = directory
        self._file: IO[str] | None = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            # Locked under a hidden name, then renamed: a sweep never sees our file unlocked.
            staging = directory / f".{self.token}"
            handle = staging.open("w")
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            staging.rename(self._path(self.token))
            self._file = handle

    def _path(self, token: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{token}.lock"

    def alive(self, token: str) -> bool:
        """Whether the process that wrote ``token`` still runs (an empty token: no writer)."""
        if token == self.token:
            return True
        if not token or self.directory is None or not _TOKEN.match(token):
            return False
        return _locked(self._path(token))

    def sweep(self, keep: set[str]) -> None:
        """Remove the files of ended processes whose tokens no intent refers to any more."""
        if self.directory is None:
            return
        for path in self.directory.glob("*.lock"):
            token = path.name[: -len(".lock")]
            if token != self.token and token not in keep and not _locked(path):
                path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._file is not None:
            self._path(self.token).unlink(missing_ok=True)
            self._file.close()  # releases the lock
            self._file = None


def _locked(path: Path) -> bool:
    try:
        handle = path.open("a")
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


@contextlib.contextmanager
def exclusive(path: Path | None) -> Iterator[bool]:
    """Try to hold ``path``'s lock for the block: True if we hold it, False if another
    process does (None: nothing to share, always True). Never waits."""
    if path is None:
        yield True
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
