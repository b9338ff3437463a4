"""OpenADR settings (``OSED_OPENADR__…``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class OpenADRSettings(BaseModel):
    #: The VEN's signal-to-function table (JSON); empty = the default (edge/openadr/signals.py).
    signal_table: Path | None = None
    #: VEN: an id given by the utility (otherwise the VTN assigns one at registration).
    ven_id: str | None = None
    #: VEN/VTN: message signing (PEM certificate and key) and TLS, all optional.
    cert: Path | None = None
    key: Path | None = None
    passphrase: str | None = None
    ca_file: Path | None = None
    #: VEN: the VTN's certificate fingerprint, to check signed messages.
    vtn_fingerprint: str | None = None
    #: VEN: shortest report sampling it offers (telemetry and flexibility).
    report_min_s: float = Field(default=10.0, gt=0)
    #: VEN: retry delays when the VTN is unreachable double up to this.
    retry_max_s: float = Field(default=60.0, gt=0)
    #: VEN: a running event run writes for real unless this is set (or edge.dry_run).
    dry_run: bool | None = None
    #: VTN: its id, address and the poll interval it asks VENs for.
    vtn_id: str = "OSED-VTN"
    vtn_host: str = "127.0.0.1"
    vtn_port: int = Field(default=8080, ge=1, le=65535)
    vtn_poll_s: float = Field(default=10.0, gt=0)
    #: VTN: report sampling it requests from VENs.
    vtn_report_s: float = Field(default=60.0, gt=0)
