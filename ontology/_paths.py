"""Where the ontology files shipped by brickschema (and by us) live on disk."""

from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

from core.errors import OntologyError

BRICK_VERSION = "1.5"


def brickschema_dir() -> Path:
    try:
        root = resources.files("brickschema") / "ontologies" / BRICK_VERSION
    except ModuleNotFoundError as exc:  # pragma: no cover - dependency missing
        raise OntologyError("the brickschema package is not installed") from exc
    path = Path(str(root))
    if not (path / "Brick.ttl").is_file():
        raise OntologyError(f"Brick {BRICK_VERSION} not found in brickschema at {path}")
    return path


def brick_ttl() -> Path:
    return brickschema_dir() / "Brick.ttl"


def s223_ttl() -> Path:
    path = brickschema_dir() / "extensions" / "223p.ttl"
    if not path.is_file():
        raise OntologyError(f"ASHRAE 223P ontology not found at {path}")
    return path


def own_data(name: str) -> Path:
    return Path(str(resources.files("ontology") / "data" / name))


def brickschema_version() -> str:
    return metadata.version("brickschema")
