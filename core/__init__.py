"""Pieces every OSED package shares: the error tree.

Kept deliberately tiny: anything here is a dependency of every other package.
"""

from core.errors import (
    GraphStoreError,
    IngestError,
    InvalidBuildingId,
    LabelingError,
    OntologyError,
    OsedError,
    QueryError,
    QueryTimeoutError,
    ValidationFailed,
)

__all__ = [
    "GraphStoreError",
    "IngestError",
    "InvalidBuildingId",
    "LabelingError",
    "OntologyError",
    "OsedError",
    "QueryError",
    "QueryTimeoutError",
    "ValidationFailed",
]
