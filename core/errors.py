"""One error tree for the whole project.

Third-party errors (pyoxigraph, httpx, rdflib, csv) are translated into these where they
enter our code; HTTP status codes are chosen only in ``api/``.
"""

from __future__ import annotations


class OsedError(Exception):
    """Base of every error OSED raises on purpose."""


class OntologyError(OsedError):
    """The ontology files could not be loaded or a class name is unknown."""


class IngestError(OsedError):
    """A point source could not be read. Names the file, row and field where known."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.source = source
        self.row = row
        self.field = field
        self.reason = message
        where = []
        if source:
            where.append(source)
        if row is not None:
            where.append(f"row {row}")
        if field:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")


class InvalidBuildingId(OsedError):
    """A building id outside the grammar that maps ids one-to-one to graph IRIs."""


class LabelingError(OsedError):
    """The labeling agent could not run (bad examples file, unknown class...)."""


class GraphStoreError(OsedError):
    """The graph store refused or failed an operation; nothing was written."""


class QueryError(GraphStoreError):
    """A SPARQL query or update is malformed or not allowed."""


class QueryTimeoutError(GraphStoreError):
    """A SPARQL query ran longer than its configured timeout and was stopped."""


class ValidationFailed(OsedError):
    """A model did not conform to its shapes and the caller asked for conformance."""


class EdgeError(OsedError):
    """A device or gateway did not do what was asked. Names the device and the point."""

    def __init__(self, message: str, *, device: str = "", point: str = "") -> None:
        self.device = device
        self.point = point
        self.reason = message
        where = ", ".join(
            x for x in (f"device {device}" if device else "", f"point {point}" if point else "") if x
        )
        super().__init__(f"{where}: {message}" if where else message)


class DeviceUnreachable(EdgeError):
    """No connection to the device or gateway (down, wrong address, service unavailable)."""


class DeviceTimeout(EdgeError):
    """The device did not answer in time."""


class WriteRefused(EdgeError):
    """The device answered but refused the write (BACnet error, HTTP 4xx, Modbus exception)."""


class DeviceLocked(WriteRefused):
    """The gateway reports the device locked (EdgeX 423)."""


class PointNotFound(EdgeError):
    """The device does not know this point (EdgeX/HA 404, unknown BACnet object)."""


class SafetyRefused(OsedError):
    """The safety layer refused a write: not writable, out of limits, locked, or taken."""


class NotWritable(SafetyRefused):
    """The graph does not say the point is writable through an adapter."""


class OutOfLimits(SafetyRefused):
    """The value lies outside the point's limits and the limit mode is 'refuse'."""


class PointLocked(SafetyRefused):
    """An operator override holds the point or its device."""


class LeaseConflict(SafetyRefused):
    """Another owner holds the point with an equal or higher priority."""
