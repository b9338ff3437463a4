from __future__ import annotations

import pytest

from core.errors import IngestError
from mapper import EdgeXAddress, HomeAssistantAddress, discover_edgex, discover_homeassistant
from tests.peers.http_peers import HA_TOKEN, edgex_app, homeassistant_app, serve


def test_edgex_devices_and_profiles_become_points_with_addresses() -> None:
    with serve(edgex_app(devices=3)) as url:
        points = discover_edgex(url)
    assert len(points) == 6  # 3 devices (paged 2 at a time) x 2 visible resources
    limit = next(p for p in points if p.name == "evse-2.CurrentLimit")
    assert limit.address == EdgeXAddress("evse-2", "CurrentLimit")
    assert limit.writable is True and (limit.minimum, limit.maximum) == (6.0, 32.0)
    assert limit.unit == "A" and limit.object_type == "Float32" and "evse" in limit.tags
    power = next(p for p in points if p.name == "evse-1.ChargingPower")
    assert power.writable is False and power.unit == "kW"
    assert not any("Diagnostics" in p.name for p in points)  # hidden resource


def test_edgex_errors_name_the_url() -> None:
    app = edgex_app()
    app.router.routes = [r for r in app.router.routes if "deviceprofile" not in getattr(r, "path", "")]
    with serve(app) as url, pytest.raises(IngestError, match=r"deviceprofile/name/evse-profile.*HTTP 404"):
        discover_edgex(url)
    with pytest.raises(IngestError, match="cannot reach"):
        discover_edgex("http://127.0.0.1:9", timeout_s=1)


def test_home_assistant_entities_with_unit_system_and_limits() -> None:
    with serve(homeassistant_app()) as url:
        points = discover_homeassistant(url, HA_TOKEN)
        with pytest.raises(IngestError, match="401"):
            discover_homeassistant(url, "wrong-token")
    by_name = {p.name: p for p in points}
    setpoint = by_name["Lobby Temperature Setpoint"]
    assert setpoint.address == HomeAssistantAddress("climate.lobby", "temperature")
    assert (
        setpoint.unit == "°F" and setpoint.writable and (setpoint.minimum, setpoint.maximum) == (60.0, 85.0)
    )
    assert by_name["Lobby Room Temperature"].writable is False
    assert by_name["Kitchen Water Heater Temperature Setpoint"].maximum == 140.0
    assert by_name["EV Charger On Off Command"].address == HomeAssistantAddress("switch.ev_charger")
    assert by_name["Battery Power Limit Setpoint"].unit == "kW"
    assert by_name["Main Meter Power"].unit == "kW" and "power" in by_name["Main Meter Power"].tags
    assert not any("Porch" in n for n in by_name)  # lights are not in scope


def test_discovery_job_through_the_api_and_the_cli(platform, tmp_path) -> None:
    import csv
    import os
    import subprocess
    import sys

    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.conftest import finished_job

    with serve(homeassistant_app()) as url, TestClient(create_app(platform.settings, platform=platform)) as c:
        r = c.post("/buildings/home/discover", json={"kind": "homeassistant", "url": url, "token": HA_TOKEN})
        assert r.status_code == 202, r.text
        job = finished_job(c, r.json()["id"])
        assert job["status"] == "succeeded", job
        assert job["result"]["points"] == 7 and job["result"]["conforms"]
        items = {p["name"]: p for p in c.get("/buildings/home/points").json()["items"]}
        assert items["Lobby Temperature Setpoint"]["unit"] == "°F"
        env = {**os.environ, "OSED_DATA_DIR": str(tmp_path / "var"), "OSED_AGENT__RETRIEVAL": "false"}
        out = tmp_path / "ha.csv"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "api.cli",
                "discover",
                "homeassistant",
                "--url",
                url,
                "--token",
                HA_TOKEN,
                "--output",
                str(out),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        rows = list(csv.DictReader(out.open(encoding="utf-8")))
        assert len(rows) == 7 and {r["ha_entity"] for r in rows} >= {"climate.lobby", "switch.ev_charger"}
