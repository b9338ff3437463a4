"""The outside of OSED Semantic: the FastAPI app, the ``osed`` CLI, settings, the demo."""

from api._service import BuildingNotFound, ImportResult, Platform, PointRow
from api.app import create_app
from api.settings import AgentSettings, ApiSettings, Role, Settings

__all__ = [
    "AgentSettings",
    "ApiSettings",
    "BuildingNotFound",
    "ImportResult",
    "Platform",
    "PointRow",
    "Role",
    "Settings",
    "create_app",
]
