"""Per-client limits: how many requests of one kind a client may have in progress."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager


class TooManyAtOnce(Exception):
    """The client already has as many such requests in progress as it may."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} at a time per client")
        self.limit = limit


class ClientSlots:
    """At most ``limit`` requests in progress per client key (a user, a token's
    fingerprint, an address): one client's runaway queries cannot take every query worker
    from the others."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._busy: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, client: str) -> Iterator[None]:
        with self._lock:
            if self._busy[client] >= self.limit:
                raise TooManyAtOnce(self.limit)
            self._busy[client] += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy[client] -= 1
                if not self._busy[client]:
                    del self._busy[client]

    def in_progress(self, client: str) -> int:
        with self._lock:
            return self._busy[client]
