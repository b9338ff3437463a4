"""The labeling agent: suggests a Brick class for each point, learns from human decisions."""

from agent._agent import AgentConfig, Example, LabelingAgent
from agent._calibration import FACTORS, Calibration, fit_isotonic
from agent._calibration import fit_calibration as fit_confidence
from agent._llm import LLMConfig, LLMRefiner, openai_compatible_model
from agent._names import Knowledge, NameParser, ParsedName, point_signature, tokenize
from agent._retrieval import ClassRetriever, MiniLMEmbedding, class_documents, s223_documents

__all__ = [
    "FACTORS",
    "AgentConfig",
    "Calibration",
    "ClassRetriever",
    "Example",
    "Knowledge",
    "LLMConfig",
    "LLMRefiner",
    "LabelingAgent",
    "MiniLMEmbedding",
    "NameParser",
    "ParsedName",
    "class_documents",
    "fit_confidence",
    "fit_isotonic",
    "openai_compatible_model",
    "point_signature",
    "s223_documents",
    "tokenize",
]
