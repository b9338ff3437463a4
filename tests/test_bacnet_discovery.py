from __future__ import annotations

import pytest

from core.errors import IngestError
from mapper import BACnetAddress, discover_bacnet
from tests.peers.bacnet_device import bacnet_device, free_udp_port


def test_discovers_objects_names_units_and_commandability_from_a_real_device() -> None:
    with bacnet_device(1001) as address:
        points = discover_bacnet(address, device=1001, local_address=f"127.0.0.1:{free_udp_port()}")
    by_name = {p.name: p for p in points}
    assert set(by_name) == {
        "AHU-1.SA-T", "AHU-1.CLG-VLV", "AHU-1.SA-T-SP", "AHU-1.RUNTIME",
        "AHU-1.SF-STS", "AHU-1.SF-CMD", "AHU-1.OCC-MODE",
    }  # fmt: skip
    sat = by_name["AHU-1.SA-T"]
    assert sat.unit == "degrees-fahrenheit" and sat.description == "Supply air temperature"
    assert sat.object_type == "analog-input" and sat.writable is False
    assert sat.address == BACnetAddress(1001, "analog-input", 1, device_address=address)
    assert by_name["AHU-1.SA-T-SP"].writable is True  # has a priority array
    assert by_name["AHU-1.RUNTIME"].writable is False  # a plain analog value has none
    assert by_name["AHU-1.CLG-VLV"].writable is True and by_name["AHU-1.SF-CMD"].writable is True
    assert by_name["AHU-1.OCC-MODE"].writable is True and by_name["AHU-1.SF-STS"].unit == ""


def test_no_answer_is_a_clear_error() -> None:
    silent = f"127.0.0.1:{free_udp_port()}"
    with pytest.raises(IngestError, match="no device answered Who-Is"):
        discover_bacnet(silent, device=4242, local_address=f"127.0.0.1:{free_udp_port()}", timeout_s=1)


def test_bacnet_discovery_through_the_cli_stores_a_labeled_building(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "OSED_DATA_DIR": str(tmp_path / "var"), "OSED_AGENT__RETRIEVAL": "false"}
    with bacnet_device(2002) as address:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "api.cli",
                "discover",
                "bacnet",
                "--address",
                address,
                "--device",
                "2002",
                "--local",
                f"127.0.0.1:{free_udp_port()}",
                "--building",
                "plant",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr
    assert "stored 'plant': 7 points" in done.stdout and "0 violations" in done.stdout
