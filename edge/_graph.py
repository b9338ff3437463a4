"""Points as the graph records them, for the safety layer: address, writability, limits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from core.errors import OsedError
from edge._base import PointTarget
from graphstore import GraphStore
from mapper import building_iri, read_points_graph


class GraphResolver:
    """``resolve(building, point)``: a point by IRI or raw name in a stored building.

    Building graphs are read at most every ``ttl_s`` seconds (writes are rare; a model
    that changed is seen within that time). ``store`` may be a function that opens the
    store: it is then opened on first use only, and with ``keep_open=False`` closed after
    each read, so that a long-running process (``osed edge-service``) does not hold an
    embedded store that other processes need to open."""

    def __init__(
        self,
        store: GraphStore | Callable[[], GraphStore],
        base_iri: str = "urn:osed:",
        ttl_s: float = 5.0,
        *,
        keep_open: bool = True,
    ) -> None:
        self._store = store if isinstance(store, GraphStore) else None
        self._open = None if isinstance(store, GraphStore) else store
        self.keep_open = keep_open
        self.base_iri = base_iri
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, dict[str, PointTarget], dict[str, list[str]]]] = {}
        self._lock = threading.Lock()

    def _points(self, building: str) -> tuple[dict[str, PointTarget], dict[str, list[str]]]:
        with self._lock:
            hit = self._cache.get(building)
            if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
                return hit[1], hit[2]
        store = self._store
        if store is None:
            assert self._open is not None
            store = self._open()
            if self.keep_open:
                self._store = store
        try:
            found = self._read(store, building)
        finally:
            if store is not self._store:
                store.close()
        with self._lock:
            self._cache[building] = (time.monotonic(), *found)
        return found

    def _read(self, store: GraphStore, building: str) -> tuple[dict[str, PointTarget], dict[str, list[str]]]:
        iri = str(building_iri(self.base_iri, building))
        if iri not in store.graphs():
            raise OsedError(f"no building '{building}'")
        by_iri: dict[str, PointTarget] = {}
        by_name: dict[str, list[str]] = {}
        for point, raw in read_points_graph(store.get_graph(iri)):
            if raw.address is None:
                continue
            target = PointTarget(
                building=building,
                iri=str(point),
                name=raw.name,
                address=raw.address,
                writable=bool(raw.writable),
                minimum=raw.minimum,
                maximum=raw.maximum,
                unit=raw.unit,
            )
            by_iri[target.iri] = target
            by_name.setdefault(raw.name, []).append(target.iri)
        return by_iri, by_name

    def __call__(self, building: str, point: str) -> PointTarget:
        by_iri, by_name = self._points(building)
        if point in by_iri:
            return by_iri[point]
        iris = by_name.get(point, [])
        if len(iris) == 1:
            return by_iri[iris[0]]
        if len(iris) > 1:
            raise OsedError(f"{len(iris)} points in '{building}' are named '{point}': use the point's IRI")
        raise OsedError(f"no point '{point}' with an adapter address in building '{building}'")

    def forget(self, building: str | None = None) -> None:
        with self._lock:
            if building is None:
                self._cache.clear()
            else:
                self._cache.pop(building, None)
