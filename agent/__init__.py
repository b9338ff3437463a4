"""The labeling agent: suggests a Brick class for each point, learns from human decisions."""

from agent._agent import AgentConfig, Example, LabelingAgent
from agent._names import Knowledge, NameParser, ParsedName, tokenize

__all__ = [
    "AgentConfig",
    "Example",
    "Knowledge",
    "LabelingAgent",
    "NameParser",
    "ParsedName",
    "tokenize",
]
