from __future__ import annotations

import socket
from pathlib import Path

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
