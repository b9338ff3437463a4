"""The one settings object: environment variables ``OSED_...`` (nested with ``__``) or a file.

Read once by the CLI or the app factory and passed down; nothing reads the environment at
import time. Unsafe values are refused outside development.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edge.openadr.settings import OpenADRSettings
from edge.settings import EdgeSettings
from graphstore import StoreSettings

Role = Literal["viewer", "reviewer", "operator", "admin"]
_TOKEN_HASH = re.compile(r"sha256:[0-9a-f]{64}")


class AgentSettings(BaseModel):
    #: Below this confidence the agent suggests nothing rather than a wrong class.
    abstain_below: float = Field(default=0.25, ge=0, le=1)
    #: Retrieval over the ontology (chromadb + MiniLM) for points the name leaves unsure.
    retrieval: bool = True
    #: Optional LLM for unsure points: an OpenAI-compatible endpoint (vLLM, Ollama,
    #: llama.cpp server, hosted API). Empty base URL = no LLM, fully offline.
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: SecretStr = SecretStr("not-needed")
    llm_batch_size: int = Field(default=20, ge=1)
    #: Site abbreviation files (TOML, same layout as agent/data/abbreviations.toml).
    abbreviation_files: list[Path] = Field(default_factory=list)
    #: Languages whose shipped vocabulary is loaded (``["fr"]``); empty = every shipped one.
    languages: list[str] = Field(default_factory=list)


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_upload_mb: float = Field(default=50.0, gt=0)
    #: Bearer tokens -> role, each key the token's hash ``sha256:<hex>`` (``osed token hash``)
    #: or, in development only, the plain token: OSED_API__TOKENS='{"sha256:…": "admin"}'.
    tokens: dict[str, Role] = Field(default_factory=dict)
    #: Named API tokens kept as hashes (``osed token add``); default ``<data_dir>/tokens.json``.
    tokens_file: Path | None = None
    #: Role of a request without a token; development only ("" = refuse).
    anonymous_role: Role | Literal[""] = "admin"
    #: SPARQL UPDATE through the endpoint, for admins only, when enabled.
    allow_sparql_update: bool = False
    #: SPARQL queries one client (user, token, or address when anonymous) may have in
    #: progress at once; one more is answered 429.
    sparql_per_client: int = Field(default=2, ge=1)
    #: Threads answering the routes that block (pages, models, validation). Python runs
    #: one thread at a time: more threads than cores only make the event loop and the
    #: decisions' committer wait longer for their turn (anyio's default is 40).
    threads: int = Field(default=8, ge=1)
    #: The built-in user store (``osed user add``); default ``<data_dir>/users.json``.
    users_file: Path | None = None
    #: How long a sign-in lasts.
    session_hours: float = Field(default=12.0, gt=0)
    #: Sign-in throttling, per user name and per client address: this many failures in a
    #: row are answered at once, each further one doubles the wait before the next try
    #: (from login_first_delay_s up to login_max_delay_s), and login_lock_after failures
    #: lock the name and the address out for login_lock_minutes.
    login_free_failures: int = Field(default=3, ge=0)
    login_first_delay_s: float = Field(default=1.0, ge=0)
    login_max_delay_s: float = Field(default=60.0, ge=0)
    login_lock_after: int = Field(default=10, ge=1)
    login_lock_minutes: float = Field(default=15.0, ge=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OSED_",
        env_nested_delimiter="__",
        env_file=None,
        extra="ignore",
    )

    environment: Literal["development", "production"] = "development"
    #: Everything the platform writes (store, caches, job files) goes below this folder.
    data_dir: Path = Path("var")
    #: Base of the IRIs minted for buildings, points and equipment.
    base_iri: str = "urn:osed:"
    store: StoreSettings = Field(default_factory=StoreSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    edge: EdgeSettings = Field(default_factory=EdgeSettings)
    openadr: OpenADRSettings = Field(default_factory=OpenADRSettings)

    @model_validator(mode="after")
    def _refuse_unsafe_in_production(self) -> Settings:
        if self.environment == "production":
            if self.api.anonymous_role:
                raise ValueError(
                    "api.anonymous_role must be empty in production: every request needs a token"
                )
            if not self.api.tokens and not self.tokens_path().exists() and not self.users_path().exists():
                raise ValueError(
                    "production needs api.tokens, a token file (osed token add) or users (osed user add)"
                )
            if any(_TOKEN_HASH.fullmatch(t) is None for t in self.api.tokens):
                raise ValueError(
                    "api.tokens must hold token hashes (sha256:<hex>, from osed token hash) in production, "
                    "not plain tokens"
                )
        return self

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    def safety_db(self) -> Path:
        """Leases, overrides and the audit log of the edge safety layer."""
        return self.data_dir / "edge" / "safety.sqlite"

    def users_path(self) -> Path:
        return self.api.users_file or self.data_dir / "users.json"

    def tokens_path(self) -> Path:
        return self.api.tokens_file or self.data_dir / "tokens.json"

    def store_path(self) -> Path:
        return Path(self.store.path) if self.store.path else self.data_dir / "store"
