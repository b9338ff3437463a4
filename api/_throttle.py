"""Sign-in throttling: failed sign-ins slow down the next try, exponentially, per user name
and per client address, then lock both out for a while. Every delay and lock is logged.

A try that is not allowed yet is refused (HTTP 429 with ``Retry-After``) without checking
the password, so waiting is the only way on; nothing sleeps in the server. A try counts as
soon as it starts, so parallel guesses get no more tries than sequential ones."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("osed.api")


@dataclass
class _Tries:
    count: int = 0  # failed tries in a row (and tries under way)
    last: float = 0.0
    locked_until: float = 0.0


@dataclass(frozen=True)
class ThrottlePolicy:
    #: Failures in a row answered without delay.
    free_failures: int = 3
    #: Wait after the first failure past the free ones; doubled at each further failure.
    first_delay_s: float = 1.0
    max_delay_s: float = 60.0
    #: Failures in a row that lock the user name (and the address) out for lock_s.
    lock_after: int = 10
    lock_s: float = 900.0


class LoginThrottle:
    """Failed sign-ins per key (``user:NAME``, ``address:IP``) of this server process."""

    #: Keys kept at most: the oldest idle ones are forgotten first (a flood of made-up
    #: names cannot grow the table without bound).
    MAX_KEYS = 100_000

    def __init__(self, policy: ThrottlePolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self._tries: dict[str, _Tries] = {}
        self._lock = threading.Lock()

    @staticmethod
    def keys(user: str, address: str) -> tuple[str, str]:
        return f"user:{user}", f"address:{address}"

    def begin(self, keys: tuple[str, ...]) -> float:
        """Start a try: 0 if it may go ahead (it is counted now), else the seconds to wait."""
        now = self.clock()
        with self._lock:
            wait = max(self._wait(self._tries.get(k), now) for k in keys)
            if wait > 0:
                log.info("sign-in refused for %s: throttled, %.0f s to wait", " ".join(keys), math.ceil(wait))
                return wait
            for k in keys:
                tries = self._tries.setdefault(k, _Tries())
                if now - tries.last > self.policy.lock_s:
                    tries.count = 0  # an old run of failures is forgotten
                tries.count += 1
                tries.last = now
            self._forget_idle(now)
            return 0.0

    def failed(self, keys: tuple[str, ...]) -> None:
        """The try begun on ``keys`` had a wrong password."""
        now = self.clock()
        p = self.policy
        with self._lock:
            for k in keys:
                tries = self._tries.setdefault(k, _Tries(count=1, last=now))
                if tries.count >= p.lock_after:
                    tries.locked_until = now + p.lock_s
                    tries.count = 0
                    log.warning(
                        "sign-in locked for %s for %.0f s after %d failures", k, p.lock_s, p.lock_after
                    )
                elif tries.count >= p.free_failures:
                    log.warning(
                        "sign-in for %s failed %d times in a row: next try in %.0f s",
                        k,
                        tries.count,
                        self._delay(tries.count),
                    )

    def succeeded(self, keys: tuple[str, ...], *, reset: tuple[str, ...]) -> None:
        """The try begun on ``keys`` signed in: the ``reset`` keys (the user) start afresh;
        the others (the address) just do not count it."""
        with self._lock:
            for k in keys:
                tries = self._tries.get(k)
                if tries is None:
                    continue
                if k in reset:
                    del self._tries[k]
                else:
                    tries.count = max(0, tries.count - 1)

    def _delay(self, failures: int) -> float:
        p = self.policy
        if failures < p.free_failures:
            return 0.0
        return float(min(p.first_delay_s * 2 ** (failures - p.free_failures), p.max_delay_s))

    def _wait(self, tries: _Tries | None, now: float) -> float:
        if tries is None:
            return 0.0
        if tries.locked_until > now:
            return tries.locked_until - now
        return max(0.0, tries.last + self._delay(tries.count) - now)

    def _forget_idle(self, now: float) -> None:
        if len(self._tries) <= self.MAX_KEYS:
            return
        idle = [
            k for k, t in self._tries.items() if t.locked_until <= now and now - t.last > self.policy.lock_s
        ]
        for k in idle:
            del self._tries[k]
        if len(self._tries) > self.MAX_KEYS:
            for k in sorted(self._tries, key=lambda k: self._tries[k].last)[
                : len(self._tries) - self.MAX_KEYS
            ]:
                del self._tries[k]
