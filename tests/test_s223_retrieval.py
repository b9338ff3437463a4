"""Retrieval over both ontologies: 223P classes beside Brick's, for the agent, the LLM's
tools and the class search of the API."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage

from agent import ClassRetriever, LabelingAgent, LLMConfig, LLMRefiner
from api._service import Platform
from core.errors import LabelingError
from mapper import RawPoint
from ontology import S223_KINDS, Ontology
from tests.test_llm import ScriptedModel, _call


def test_the_index_holds_223p_classes_with_their_kinds(ontology: Ontology, retriever: ClassRetriever) -> None:
    classes = ontology.s223_classes
    kinds = {c.kind for c in classes.values()}
    assert {
        "equipment",
        "property",
        "medium",
        "enumeration",
        "connection",
        "connection_point",
        "space",
    } <= kinds
    assert classes["Fan"].comment.startswith("A piece of Equipment")
    assert retriever.s223_collection().count() == len(classes) > 500
    assert retriever.collection().count() > 800  # Brick's point classes are still there


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("supply fan", "equipment", "Fan"),
        ("outside air damper", "equipment", "Damper"),
        ("hot water", "medium", "Water-HotWater"),
        ("air duct", "connection", "Duct"),
    ],
)
def test_search_s223_finds_the_class_of_a_text_within_its_kind(
    retriever: ClassRetriever, text: str, kind: Any, expected: str
) -> None:
    (hits,) = retriever.search_s223([text], kind=kind)
    assert hits[0][0] == expected, hits
    classes = retriever._ontology.s223_classes
    assert all(classes[name].kind == kind for name, _ in hits)


def test_search_s223_refuses_an_unknown_kind(retriever: ClassRetriever) -> None:
    with pytest.raises(LabelingError, match="unknown 223P kind"):
        retriever.search_s223(["fan"], kind="gadget")  # type: ignore[arg-type]
    assert set(S223_KINDS) >= {"equipment", "medium"}


def test_the_llm_can_look_up_223p_classes(ontology: Ontology) -> None:
    script = [
        AIMessage(
            content="",
            tool_calls=[
                _call("search_s223_classes", {"query": "pump", "kind": "equipment"}, 1),
                _call("lookup_s223_class", {"name": "s223:Pump"}, 2),
                _call("lookup_s223_class", {"name": "s223:Gizmo"}, 3),
            ],
        ),
        AIMessage(content="", tool_calls=[_call("submit_labels", {"labels": []}, 4)]),
    ]
    model = ScriptedModel(messages=iter(script))
    model.seen = []
    agent = LabelingAgent(ontology)
    config = LLMConfig(base_url="http://unused", model="fake")
    agent.llm = LLMRefiner(model, ontology, agent.search_classes, config)
    agent.suggest([RawPoint("XQ-77 blorp", unit="°F")])
    answers = {m.tool_call_id: json.loads(m.content) for m in model.seen[-1] if isinstance(m, ToolMessage)}
    assert any(hit["class"] == "s223:Pump" for hit in answers["call-1"])
    assert all(hit["kind"] == "equipment" for hit in answers["call-1"])
    assert answers["call-2"]["kind"] == "equipment" and "s223:Equipment" in answers["call-2"]["parents"]
    assert "error" in answers["call-3"]
    assert "search_s223_classes" in model.seen[0][0].content


def test_the_class_search_of_the_api_finds_223p_classes(platform: Platform) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(platform.settings, platform=platform)) as client:
        s223 = client.get("/classes", params={"q": "fan", "ontology": "s223", "kind": "equipment"})
        brick = client.get("/classes", params={"q": "fan status"})
        bad = client.get("/classes", params={"q": "fan", "ontology": "s223", "kind": "gadget"})
    assert s223.status_code == 200, s223.text
    found = s223.json()
    assert found[0]["name"] == "Fan" and found[0]["iri"] == "http://data.ashrae.org/standard223#Fan"
    assert {c["kind"] for c in found} == {"equipment"} and {c["ontology"] for c in found} == {"s223"}
    assert brick.json()[0]["ontology"] == "brick" and "Fan" in brick.json()[0]["name"]
    assert bad.status_code == 422


def test_an_llm_configured_without_its_extra_warns_once_and_labeling_goes_on(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "langchain_openai", None)  # as if the extra were missing
    platform.settings.agent.llm_base_url = "http://127.0.0.1:9/v1"
    platform.settings.agent.llm_model = "any"
    points = [RawPoint("AHU-1.SA-T", unit="°F", object_type="AI"), RawPoint("XQ-77 blorp", unit="°F")]
    with caplog.at_level(logging.WARNING):
        first = platform.label(points)
        second = platform.label(points)
    assert first[0].brick_class == "Supply_Air_Temperature_Sensor" and first == second
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "llm" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
