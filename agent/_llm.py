"""Optional LLM second opinion for the points the agent is unsure about.

Only uncertain points are sent, in batches, to a LangChain tool-calling chat model whose
tools are the agent's own knowledge: search the Brick classes, look one up, and check a
proposed class (it must exist, be a point class and fit the point's unit). The model's
answer is used only when the check passes. Without an endpoint configured nothing here
runs, and everything works offline.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import SecretStr

from core.errors import LabelingError
from mapper import RawPoint, Suggestion
from ontology import S223_KINDS, Ontology, S223Kind, qk_local

log = logging.getLogger(__name__)
#: Finds 223P classes for a text, of one kind or any (``ClassRetriever.search_s223``).
S223Search = Callable[[str, S223Kind | None], list[tuple[str, float]]]

SYSTEM_PROMPT = """You label building-automation points with Brick Schema 1.5 classes.
For each point you get its raw name, description, unit, BACnet object type and the
candidate classes a rule-based agent found. Use the tools: search_brick_classes to find
classes by meaning, lookup_class to read a class's definition, check_class to verify that
a class exists and fits the point's unit; search_s223_classes and lookup_s223_class find
and read ASHRAE 223P classes (equipment, properties, media) when the point's equipment or
medium is unclear. When done, call submit_labels once with one
entry per point: its index, a Brick class local name (e.g. Zone_Air_Temperature_Sensor)
or null when unsure, and your confidence between 0 and 1. Never invent class names."""


@dataclass(frozen=True)
class LLMConfig:
    """Where the OpenAI-compatible endpoint is (vLLM, Ollama, llama.cpp, a hosted API)."""

    base_url: str
    model: str
    api_key: str = "not-needed"
    batch_size: int = 20
    max_rounds: int = 6
    timeout_s: float = 60.0
    #: Points whose suggestion is below this confidence (or abstained) are sent.
    below: float = 0.5


def openai_compatible_model(config: LLMConfig) -> Any:
    """A LangChain chat model for an OpenAI-compatible endpoint."""
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as exc:
        raise LabelingError("the LLM path needs the 'llm' extra: pip install osed-semantic[llm]") from exc
    return ChatOpenAI(
        base_url=config.base_url,
        model=config.model,
        api_key=SecretStr(config.api_key),
        timeout=config.timeout_s,
        temperature=0,
    )


class LLMRefiner:
    """Sends unsure points to a tool-calling chat model; keeps only verified answers."""

    def __init__(
        self,
        chat_model: Any,
        ontology: Ontology,
        search: Callable[[str], list[tuple[str, float]]],
        config: LLMConfig,
        search_s223: S223Search | None = None,
    ) -> None:
        self._model = chat_model
        self._ontology = ontology
        self._search = search
        self._search_s223 = search_s223 or self._words_s223
        self.config = config
        self.calls = 0  # chat-model invocations, for tests and cost reporting

    def refine(self, points: Sequence[RawPoint], suggestions: Sequence[Suggestion]) -> list[Suggestion]:
        out = list(suggestions)
        unsure = [
            i for i, s in enumerate(suggestions) if s.brick_class is None or s.confidence < self.config.below
        ]
        # One question per distinct point: the same name on 50 VAVs is asked once.
        distinct: dict[tuple[str, str, str, str], list[int]] = {}
        for i in unsure:
            p = points[i]
            distinct.setdefault((p.name, p.description, p.unit, p.object_type), []).append(i)
        groups = list(distinct.values())
        for start in range(0, len(groups), self.config.batch_size):
            batch = groups[start : start + self.config.batch_size]
            answers = self._ask([points[g[0]] for g in batch], [suggestions[g[0]] for g in batch])
            for position, (cls, confidence) in answers.items():
                for i in batch[position]:
                    out[i] = replace(
                        suggestions[i],
                        brick_class=cls,
                        confidence=round(confidence, 3),
                        reason=f"LLM: {cls} (checked: exists, fits unit); agent: {suggestions[i].reason}",
                        source="llm",
                    )
        return out

    # -- the tool-calling conversation ----------------------------------------------------
    def _ask(self, points: list[RawPoint], suggestions: list[Suggestion]) -> dict[int, tuple[str, float]]:
        from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage

        tools = self._tools(points)
        try:
            model = self._model.bind_tools(list(tools.values()))
        except NotImplementedError:
            model = self._model  # a model that emits tool calls without binding (test fakes)
        messages: list[Any] = [
            SystemMessage(SYSTEM_PROMPT),
            HumanMessage(self._question(points, suggestions)),
        ]
        for _round in range(self.config.max_rounds):
            try:
                reply = model.invoke(messages)
            except Exception as exc:  # noqa: BLE001 - any provider error: keep the agent's answers
                log.warning("LLM call failed, keeping the agent's suggestions: %s", exc)
                return {}
            self.calls += 1
            messages.append(reply)
            calls = getattr(reply, "tool_calls", None) or []
            if not calls:
                return {}
            for call in calls:
                name, args = call.get("name"), call.get("args") or {}
                if name == "submit_labels":
                    return self._accept(points, args.get("labels", []))
                tool = tools.get(str(name))
                content = tool.invoke(args) if tool is not None else f"unknown tool {name}"
                messages.append(ToolMessage(content=json.dumps(content), tool_call_id=call.get("id", "")))
        return {}

    def _question(self, points: list[RawPoint], suggestions: list[Suggestion]) -> str:
        lines = []
        for i, (p, s) in enumerate(zip(points, suggestions, strict=True)):
            candidates = [c for c in (s.brick_class, *s.alternatives) if c]
            lines.append(
                json.dumps(
                    {
                        "index": i,
                        "name": p.name,
                        "description": p.description,
                        "unit": p.unit,
                        "object_type": p.object_type,
                        "candidates": candidates,
                    }
                )
            )
        return "Label these points:\n" + "\n".join(lines)

    def _tools(self, points: list[RawPoint]) -> dict[str, Any]:
        from langchain_core.tools import StructuredTool

        def search_brick_classes(query: str) -> list[dict[str, str]]:
            """Brick point classes whose meaning is closest to the query text."""
            return [
                {"class": name, "definition": self._ontology.index.get(name).definition}
                for name, _ in self._search(query)[:8]
            ]

        def lookup_class(name: str) -> dict[str, object]:
            """Label, definition, parents, tags and quantity kind of one Brick class."""
            index = self._ontology.index
            if name not in index:
                return {"error": f"{name} is not a Brick 1.5 class"}
            cls = index.get(name)
            quantity = index.quantity_kind(name)
            return {
                "class": name,
                "label": cls.label,
                "definition": cls.definition,
                "parents": list(cls.parents),
                "tags": list(cls.tags),
                "quantity_kind": qk_local(quantity) if quantity else None,
                "use_instead": index.canonical(name) if index.canonical(name) != name else None,
            }

        def search_s223_classes(query: str, kind: str = "") -> list[dict[str, str]] | dict[str, str]:
            """ASHRAE 223P classes closest to the query text; kind (optional): equipment,
            property, medium, enumeration, connection, connection_point or space."""
            if kind and kind not in S223_KINDS:
                return {"error": f"kind must be one of {', '.join(S223_KINDS)}"}
            found = self._search_s223(query, kind or None)
            classes = self._ontology.s223_classes
            return [
                {"class": f"s223:{name}", "kind": classes[name].kind, "comment": classes[name].comment}
                for name, _ in found[:8]
                if name in classes
            ]

        def lookup_s223_class(name: str) -> dict[str, object]:
            """Label, comment, kind and parents of one ASHRAE 223P class (e.g. s223:Fan)."""
            cls = self._ontology.s223_classes.get(name.removeprefix("s223:"))
            if cls is None:
                return {"error": f"{name} is not an ASHRAE 223P class"}
            return {
                "class": f"s223:{cls.name}",
                "label": cls.label,
                "comment": cls.comment,
                "kind": cls.kind,
                "parents": [f"s223:{p}" for p in cls.parents],
            }

        def check_class(index: int, brick_class: str) -> dict[str, object]:
            """Whether brick_class exists, is a point class, and fits the unit of point `index`."""
            if not 0 <= index < len(points):
                return {"valid": False, "reason": "no point with that index"}
            problem = self.problem(points[index], brick_class)
            return {"valid": problem is None, "reason": problem or "ok"}

        def submit_labels(labels: list[dict[str, Any]]) -> str:
            """Final answer: [{index, brick_class (or null), confidence}] for every point."""
            return "received"

        return {
            f.__name__: StructuredTool.from_function(f)
            for f in (
                search_brick_classes,
                lookup_class,
                check_class,
                search_s223_classes,
                lookup_s223_class,
                submit_labels,
            )
        }

    def _words_s223(self, query: str, kind: S223Kind | None) -> list[tuple[str, float]]:
        """Without retrieval: 223P classes whose name, label or comment holds the query's
        words, the most words first."""
        words = [w for w in query.lower().replace("-", " ").split() if len(w) > 1]
        scored = []
        for cls in self._ontology.s223_classes.values():
            if kind and cls.kind != kind:
                continue
            text = f"{cls.name} {cls.label} {cls.comment}".lower()
            hits = sum(1 for w in words if w in text)
            if hits:
                scored.append((cls.name, hits / max(1, len(words))))
        return sorted(scored, key=lambda hit: (-hit[1], len(hit[0]), hit[0]))

    def problem(self, point: RawPoint, brick_class: str) -> str | None:
        """Why a proposed class cannot be used for this point, or None when it can."""
        index = self._ontology.index
        if brick_class not in index:
            return f"{brick_class} is not a Brick 1.5 class"
        cls = index.canonical(brick_class)
        if not index.is_point(cls):
            return f"{brick_class} is not a point class"
        unit = self._ontology.units.lookup(point.unit)
        quantity = index.quantity_kind(cls)
        if unit is not None and quantity and unit.quantity_kinds and quantity not in unit.quantity_kinds:
            return f"unit {point.unit} cannot measure {qk_local(quantity)}"
        return None

    def _accept(self, points: list[RawPoint], labels: Any) -> dict[int, tuple[str, float]]:
        accepted: dict[int, tuple[str, float]] = {}
        if not isinstance(labels, list):
            return accepted
        for item in labels:
            if not isinstance(item, dict):
                continue
            i, cls = item.get("index"), item.get("brick_class")
            if not isinstance(i, int) or not 0 <= i < len(points) or not isinstance(cls, str):
                continue
            if self.problem(points[i], cls) is not None:
                log.info("LLM proposed %s for %s: rejected", cls, points[i].name)
                continue
            try:
                confidence = max(0.0, min(1.0, float(item.get("confidence", 0.5))))
            except (TypeError, ValueError):
                confidence = 0.5
            accepted[i] = (self._ontology.index.canonical(cls), confidence)
        return accepted
