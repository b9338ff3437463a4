from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from agent import ClassRetriever
from api._service import Platform
from api.settings import Settings
from graphstore import OxigraphStore
from ontology import Ontology

FIXTURES = Path(__file__).parent / "fixtures"
DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "dev"


@pytest.fixture(scope="session")
def ontology(tmp_path_factory: pytest.TempPathFactory) -> Ontology:
    return Ontology.load(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def retriever(ontology: Ontology, tmp_path_factory: pytest.TempPathFactory) -> ClassRetriever:
    return ClassRetriever(ontology, tmp_path_factory.mktemp("chroma"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "var")
    settings.agent.retrieval = False  # exercised once, in test_agent.py
    return settings


@pytest.fixture
def platform(settings: Settings, ontology: Ontology) -> Platform:
    p = Platform(settings, store=OxigraphStore(None, settings.store), ontology=ontology)
    yield p
    p.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def finished_job(client: Any, job_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """Poll a job through the API until it succeeds or fails; the job's JSON."""
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)
