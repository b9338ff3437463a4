"""Queries that can be stopped: worker processes over snapshots of the embedded store.

pyoxigraph has no query timeout or cancellation, and an aggregate (``COUNT(*)`` over a
cross product) runs inside one evaluation step for as long as it takes, so a deadline
checked between result rows never fires. Queries the platform did not write (the SPARQL
endpoint, ``osed query``) therefore run in a worker process (``_query_worker.py``) that
is killed at the deadline: its CPU and memory are freed at once and a fresh worker takes
its place.

A worker reads a *snapshot*: for the on-disk store a RocksDB checkpoint (``Store.backup``:
hard links, ~0.1 s) opened read-only, which nobody writes (``Store.read_only`` over a
folder another process writes is undefined behaviour); for the in-memory store an
N-Quads dump. A snapshot is made when a query arrives and the store was written since the
last one, so a query sees every write made before it; it is removed once no query reads
it any more.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyoxigraph as ox
from rdflib import BNode, Graph, Literal, URIRef
from rdflib.term import Identifier

from core.errors import GraphStoreError, QueryError, QueryTimeoutError
from graphstore._base import QueryResult

_HEADER = struct.Struct(">I")
_SCRIPT = Path(__file__).with_name("_query_worker.py")


@dataclass
class Snapshot:
    generation: int
    kind: str  # "dir" (a checkpoint folder) or "nquads" (a dump file)
    path: Path
    readers: int = 0


class Snapshots:
    """Snapshots of one store, made on demand and removed when no query reads them."""

    def __init__(self, store: ox.Store, on_disk: bool, folder: Path | None) -> None:
        self._store = store
        self._on_disk = on_disk
        if folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="osed-snapshots-"))
        else:
            shutil.rmtree(folder, ignore_errors=True)  # a killed process's snapshots
            folder.mkdir(parents=True)
            self._folder = folder
        self._lock = threading.Lock()
        self._current: Snapshot | None = None
        self._old: list[Snapshot] = []

    def acquire(self, generation: int) -> Snapshot:
        """A snapshot holding at least every write up to ``generation``."""
        with self._lock:
            current = self._current
            if current is None or current.generation < generation:
                current = self._make(generation)
                if self._current is not None:
                    self._old.append(self._current)
                self._current = current
                self._prune()
            current.readers += 1
            return current

    def release(self, snapshot: Snapshot) -> None:
        with self._lock:
            snapshot.readers -= 1
            self._prune()

    def _make(self, generation: int) -> Snapshot:
        name = f"{generation}-{uuid.uuid4().hex[:8]}"
        try:
            if self._on_disk:
                path = self._folder / name
                self._store.backup(str(path))
                return Snapshot(generation, "dir", path)
            path = self._folder / f"{name}.nq"
            self._store.dump(str(path), format=ox.RdfFormat.N_QUADS)
            return Snapshot(generation, "nquads", path)
        except (OSError, ValueError) as exc:
            raise GraphStoreError(f"cannot take a snapshot of the store for the query: {exc}") from exc

    def _prune(self) -> None:
        keep = []
        for snapshot in self._old:
            if snapshot.readers > 0:
                keep.append(snapshot)
            else:
                _remove(snapshot.path)
        self._old = keep

    def close(self) -> None:
        with self._lock:
            self._current = None
            self._old = []
            shutil.rmtree(self._folder, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class _Worker:
    def __init__(self, memory_mb: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(_SCRIPT), str(memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ask(self, request: tuple[Any, ...], deadline: float) -> tuple[Any, ...] | None:
        """The worker's answer, or None when the deadline passed first."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.proc.stdin.write(_HEADER.pack(len(data)) + data)
            self.proc.stdin.flush()
        except OSError as exc:
            raise _WorkerDied(str(exc)) from None
        fd = self.proc.stdout.fileno()
        header = self._read(fd, _HEADER.size, deadline)
        if header is None:
            return None
        (size,) = _HEADER.unpack(header)
        body = self._read(fd, size, deadline)
        if body is None:
            return None
        answer: tuple[Any, ...] = pickle.loads(body)
        return answer

    @staticmethod
    def _read(fd: int, size: int, deadline: float) -> bytes | None:
        chunks: list[bytes] = []
        missing = size
        while missing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, min(missing, 1 << 20))
            if not chunk:
                raise _WorkerDied("the query worker exited")
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class _WorkerDied(Exception):
    pass


class QueryWorkers:
    """At most ``size`` worker processes; a query waits for a free one until its deadline."""

    def __init__(self, size: int, memory_mb: int) -> None:
        self._size = size
        self._memory_mb = memory_mb
        self._idle: list[_Worker] = []
        self._running = 0  # workers that exist (idle or busy) or are starting
        self._cond = threading.Condition()
        self._closed = False
        #: Called with the pid of each worker killed at a deadline (tests, logs).
        self.on_kill: Callable[[int], None] | None = None

    def run(
        self, snapshot: Snapshot, sparql: str, max_rows: int, deadline: float, timeout: float
    ) -> QueryResult:
        worker = self._take(deadline, timeout)
        try:
            answer = worker.ask((snapshot.kind, str(snapshot.path), sparql, max_rows), deadline)
        except _WorkerDied as exc:
            self._discard(worker)
            raise GraphStoreError(f"the query worker died ({exc}); the query was not answered") from None
        if answer is None:
            # Past its deadline: the worker is killed, which stops the query for real.
            self._discard(worker)
            if self.on_kill is not None:
                self.on_kill(worker.pid)
            raise QueryTimeoutError(f"query stopped after the {timeout:g} s timeout")
        self._give_back(worker)
        return _result(answer)

    def _take(self, deadline: float, timeout: float) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise GraphStoreError("the store is closed")
                if self._idle:
                    return self._idle.pop()
                if self._running < self._size:
                    self._running += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise QueryTimeoutError(
                        f"query stopped after the {timeout:g} s timeout: all {self._size} query "
                        "workers were busy"
                    )
                self._cond.wait(remaining)
        try:
            return _Worker(self._memory_mb)
        except OSError as exc:
            with self._cond:
                self._running -= 1
                self._cond.notify()
            raise GraphStoreError(f"cannot start a query worker: {exc}") from exc

    def _give_back(self, worker: _Worker) -> None:
        with self._cond:
            if self._closed:
                worker.kill()
                return
            self._idle.append(worker)
            self._cond.notify()

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._cond:
            self._running -= 1
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for worker in idle:
            worker.kill()


def _term(value: tuple[str, ...]) -> Identifier:
    if value[0] == "u":
        return URIRef(value[1])
    if value[0] == "b":
        return BNode(value[1])
    _, text, language, datatype = value
    if language:
        return Literal(text, lang=language)
    return Literal(text, datatype=URIRef(datatype) if datatype else None)


def _result(answer: tuple[Any, ...]) -> QueryResult:
    kind = answer[0]
    if kind == "error":
        if answer[1] == "syntax":
            raise QueryError(f"malformed SPARQL query: {answer[2]}")
        raise GraphStoreError(f"query failed: {answer[2]}")
    if kind == "ask":
        return QueryResult(kind="ask", boolean=bool(answer[1]))
    if kind == "graph":
        graph = Graph()
        for s, p, o in answer[1]:
            graph.add((_term(s), _term(p), _term(o)))
        return QueryResult(kind="graph", graph=graph, truncated=bool(answer[2]))
    variables: list[str] = answer[1]
    rows = [
        {var: _term(value) for var, value in zip(variables, row, strict=True) if value is not None}
        for row in answer[2]
    ]
    return QueryResult(kind="select", variables=variables, rows=rows, truncated=bool(answer[3]))
