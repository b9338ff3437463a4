"""The optional LLM path, driven by LangChain's fake chat model (scripted tool calls)."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from pydantic import Field

from agent import LabelingAgent, LLMConfig, LLMRefiner
from mapper import RawPoint
from ontology import Ontology


class ScriptedModel(GenericFakeChatModel):
    """Replays AIMessages and records every conversation it was sent."""

    seen: list[Any] = Field(default_factory=list)

    def invoke(self, messages: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.seen.append(list(messages))
        return super().invoke(messages, *args, **kwargs)


def _call(name: str, args: dict[str, Any], n: int) -> dict[str, Any]:
    return {"name": name, "args": args, "id": f"call-{n}"}


def _agent(
    ontology: Ontology, script: list[AIMessage], batch: int = 20
) -> tuple[LabelingAgent, ScriptedModel]:
    model = ScriptedModel(messages=iter(script))
    model.seen = []
    agent = LabelingAgent(ontology)
    config = LLMConfig(base_url="http://unused", model="fake", batch_size=batch)
    agent.llm = LLMRefiner(model, ontology, agent.search_classes, config)
    return agent, model


POINTS = [
    RawPoint("AHU-1.SA-T", unit="°F", object_type="AI"),  # confident: never sent
    RawPoint("XQ-77 blorp", unit="°F"),  # unsure
    RawPoint("XQ-78 zorp", unit="°F"),  # unsure
]


def test_only_unsure_points_are_sent_and_checked_answers_are_used(ontology: Ontology) -> None:
    script = [
        AIMessage(
            content="",
            tool_calls=[
                _call("lookup_class", {"name": "Zone_Air_Temperature_Sensor"}, 1),
                _call("check_class", {"index": 0, "brick_class": "Zone_Air_Temperature_Sensor"}, 2),
                _call("search_brick_classes", {"query": "zone temperature"}, 3),
            ],
        ),
        AIMessage(
            content="",
            tool_calls=[
                _call(
                    "submit_labels",
                    {
                        "labels": [
                            {"index": 0, "brick_class": "Zone_Air_Temperature_Sensor", "confidence": 0.8},
                            # A flow class cannot be measured in °F: rejected by the check.
                            {"index": 1, "brick_class": "Supply_Air_Flow_Sensor", "confidence": 0.9},
                        ]
                    },
                    4,
                )
            ],
        ),
    ]
    agent, model = _agent(ontology, script)
    before = LabelingAgent(ontology).suggest(POINTS)
    out = agent.suggest(POINTS)
    assert out[0] == before[0]
    assert out[1].brick_class == "Zone_Air_Temperature_Sensor" and out[1].source == "llm"
    assert "checked" in out[1].reason
    assert out[2] == before[2]
    question = model.seen[0][1].content
    assert "XQ-77" in question and "AHU-1.SA-T" not in question
    tool_results = [m.content for m in model.seen[1] if m.type == "tool"]
    assert any("A physical or virtual sensor" in r for r in tool_results)  # lookup_class ran
    assert any('"valid": true' in r for r in tool_results)  # check_class ran


def test_unknown_class_names_are_never_used(ontology: Ontology) -> None:
    script = [
        AIMessage(
            content="",
            tool_calls=[_call("submit_labels", {"labels": [{"index": 0, "brick_class": "Blorp_Sensor"}]}, 1)],
        )
    ]
    agent, _ = _agent(ontology, script)
    out = agent.suggest(POINTS[1:2])
    assert out[0].source != "llm"


def test_points_go_in_batches_and_a_failing_provider_changes_nothing(ontology: Ontology) -> None:
    empty = [AIMessage(content="no idea")]
    agent, model = _agent(ontology, empty * 2, batch=1)
    out = agent.suggest(POINTS)
    assert len(model.seen) == 2  # two unsure points, one per batch
    assert [s.brick_class for s in out] == [s.brick_class for s in LabelingAgent(ontology).suggest(POINTS)]
    broken, _ = _agent(ontology, [])  # the fake raises when its script runs out
    assert broken.suggest(POINTS)[1].source != "llm"
