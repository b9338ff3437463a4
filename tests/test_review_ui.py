"""The review page in a real headless Chromium (Debian chromium + chromium-driver), driven by
Selenium against a real uvicorn server. Each test checks the stored graph, not just the page."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rdflib import Literal, URIRef
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from api._service import Platform
from api._users import UserStore
from api.app import create_app
from api.demo import demo_points
from eval.paging import synthetic_points
from mapper import RawPoint
from ontology import BRICK, OSED
from tests.conftest import stored_points
from tests.peers.http_peers import serve

ARTIFACTS = Path(
    os.environ.get("OSED_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "build" / "artifacts")
)
PASSWORD = "correct horse battery"


@pytest.fixture
def server(platform: Platform) -> Iterator[tuple[str, Platform]]:
    platform.settings.api.anonymous_role = ""  # everyone signs in
    users = UserStore(platform.settings.users_path())
    users.add("rita", PASSWORD, "reviewer")
    users.add("ralph", PASSWORD, "reviewer")
    users.add("victor", PASSWORD, "viewer")
    points = [p for p in demo_points() if p.name.startswith(("AHU-1", "CH-", "CHW", "MTR", "TSTAT"))]
    hostile = '<img src=x onerror="window.__pwned=1">'
    points.append(RawPoint(hostile, description="<script>window.__pwned=2</script>", unit="°F"))
    platform.import_points("hq", points, label="Headquarters")
    with serve(create_app(platform.settings, platform=platform)) as base:
        yield base, platform


@pytest.fixture
def mixed_server(platform: Platform) -> Iterator[tuple[str, Platform]]:
    """A building of 140 points (two pages) mixing described and undescribed points, with
    and without unit or equipment, and opaque codes the agent abstains on."""
    platform.settings.api.anonymous_role = ""
    UserStore(platform.settings.users_path()).add("rita", PASSWORD, "reviewer")
    platform.import_points("mixed", synthetic_points(140, seed=3))
    with serve(create_app(platform.settings, platform=platform)) as base:
        yield base, platform


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, (
        "Debian packages chromium and chromium-driver are required (.ci/run installs them)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path)})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    b = webdriver.Chrome(service=Service(driver), options=options)
    b.implicitly_wait(0)
    yield b
    # Whatever a test did, the page's Content-Security-Policy refused nothing of it.
    refused = csp_reports(b)
    b.quit()
    assert not refused, f"the page broke its Content-Security-Policy: {refused}"


# -- helpers ---------------------------------------------------------------------------------
def csp_reports(b: WebDriver) -> list[str]:
    """The browser's console messages about Content-Security-Policy since the last call."""
    return [
        str(e["message"])
        for e in b.get_log("browser")
        if "Content Security Policy" in str(e["message"]) or "Refused to" in str(e["message"])
    ]


def wait(b: WebDriver, cond: Any, timeout: float = 30.0) -> Any:
    # Lists re-render when a late response arrives (each keystroke of a class search asks
    # again): an element found just before that is stale, and the condition is tried again.
    return WebDriverWait(
        b, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
    ).until(cond)


def marker(b: WebDriver, name: str = "ready") -> str:
    return str(b.execute_script(f"return document.body.dataset.{name} || ''"))


def after(b: WebDriver, action: Any, name: str = "ready") -> None:
    """Do ``action`` and wait until the page has reloaded its data."""
    before = marker(b, name)
    action()
    wait(b, lambda d: marker(d, name) != before)


def sign_in(b: WebDriver, base: str, user: str, building: str = "hq") -> None:
    b.get(f"{base}/ui?building={building}")
    wait(b, lambda d: marker(d) != "")
    b.find_element(By.ID, "username").send_keys(user)
    b.find_element(By.ID, "password").send_keys(PASSWORD)
    after(b, lambda: b.find_element(By.ID, "signin-button").click())


def rows(b: WebDriver) -> list[WebElement]:
    return b.find_elements(By.CSS_SELECTOR, "#points tbody tr")


def row_named(b: WebDriver, name: str) -> WebElement:
    for tr in rows(b):
        if tr.find_element(By.CSS_SELECTOR, "td.name").text == name:
            return tr
    raise AssertionError(f"no row {name!r} on the page")


def filter_text(b: WebDriver, text: str, status: str = "") -> None:
    box = b.find_element(By.ID, "f-q")
    box.clear()
    box.send_keys(text)
    b.execute_script("document.getElementById('f-status').value = arguments[0]", status)
    after(b, lambda: b.find_element(By.ID, "apply-filter").click(), "loaded")


def stored(platform: Platform, name: str) -> dict[str, str | None]:
    """The stored state of the point(s) with that raw name: status and decided class."""
    graph = platform.building_graph("hq")
    out: dict[str, str | None] = {}
    for p in graph.subjects(OSED.rawName, Literal(name)):
        out["iri"] = str(p)
        out["status"] = str(graph.value(p, OSED.reviewStatus))
        decided = graph.value(p, OSED.decidedClass)
        out["decided"] = str(decided).rsplit("#", 1)[-1] if decided is not None else None
    return out


# -- tests -----------------------------------------------------------------------------------
def test_reviewer_signs_in_filters_confirms_and_the_graph_records_who(server, browser) -> None:
    base, platform = server
    b = browser
    b.get(f"{base}/ui")
    wait(b, lambda d: marker(d) != "")
    assert "not signed in" in b.find_element(By.ID, "whoami").text
    assert rows(b) == []
    sign_in(b, base, "rita")
    assert "rita (reviewer)" in b.find_element(By.ID, "whoami").text
    total = int(b.find_element(By.ID, "s-total").text)
    assert total == len(platform.points("hq", limit=1000)[1])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    b.save_screenshot(str(ARTIFACTS / "review-main.png"))

    filter_text(b, "ZN-T")
    names = [tr.find_element(By.CSS_SELECTOR, "td.name").text for tr in rows(b)]
    assert names and all("ZN-T" in n for n in names)
    target = "AHU-1.VAV-1-01.ZN-T"
    assert stored(platform, target)["status"] == "suggested"
    tr = row_named(b, target)
    cls = tr.find_element(By.CSS_SELECTOR, "td.class").text
    after(b, lambda: tr.find_element(By.CSS_SELECTOR, "button.confirm").click())
    assert stored(platform, target) == {
        "iri": stored(platform, target)["iri"],
        "status": "confirmed",
        "decided": cls,
    }
    assert "confirmed" in row_named(b, target).find_element(By.CSS_SELECTOR, ".status-cell").text
    assert b.find_element(By.ID, "s-decided").text.startswith("1 ")
    history = platform.history("hq", str(stored(platform, target)["iri"]))
    assert [(h["who"], h["action"], h["brick_class"]) for h in history] == [("rita", "confirm", cls)]
    # The history panel shows the same.
    row_named(b, target).find_element(By.CSS_SELECTOR, "button.history").click()
    wait(b, lambda d: "rita" in d.find_element(By.ID, "history").text)


def test_correct_through_the_class_search(server, browser) -> None:
    base, platform = server
    b = browser
    sign_in(b, base, "rita")
    target = "AHU-1.VAV-1-02.OCC"
    filter_text(b, target)
    row_named(b, target).find_element(By.CSS_SELECTOR, "button.correct").click()
    search = b.find_element(By.ID, "class-search")
    search.clear()
    search.send_keys("occupancy sensor")
    wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "#class-results li[data-cls='Occupancy_Sensor']"))

    def choose(d: WebDriver) -> bool:
        item = d.find_element(By.CSS_SELECTOR, "#class-results li[data-cls='Occupancy_Sensor']")
        assert "occup" in item.find_element(By.TAG_NAME, "small").text.lower()  # the definition is shown
        item.click()
        return d.find_element(By.ID, "class-chosen").text == "Occupancy_Sensor"

    wait(b, choose)
    after(b, lambda: b.find_element(By.ID, "correct-apply").click())
    state = stored(platform, target)
    assert (state["status"], state["decided"]) == ("corrected", "Occupancy_Sensor")
    graph = platform.building_graph("hq")
    assert (URIRef(str(state["iri"])), None, BRICK.Occupancy_Sensor) in graph


def test_bulk_confirm_a_selection_and_everything_matching_a_filter(server, browser) -> None:
    base, platform = server
    b = browser
    sign_in(b, base, "rita")
    filter_text(b, "DA-T")
    picked = [tr.find_element(By.CSS_SELECTOR, "td.name").text for tr in rows(b)[:2]]
    for tr in rows(b)[:2]:
        tr.find_element(By.CSS_SELECTOR, "input.pick").click()
    assert b.find_element(By.ID, "selected-count").text == "2 selected"
    after(b, lambda: b.find_element(By.ID, "confirm-selected").click())
    assert [stored(platform, n)["status"] for n in picked] == ["confirmed", "confirmed"]
    assert stored(platform, rows(b)[2].find_element(By.CSS_SELECTOR, "td.name").text)["status"] == "suggested"

    filter_text(b, "AIRFLOW-SP", status="suggested")
    matching = [n for n in (r.name for r in platform.points("hq", limit=1000)[1]) if "AIRFLOW-SP" in n]
    assert len(matching) >= 4
    after(b, lambda: b.find_element(By.ID, "confirm-matching").click())
    assert {stored(platform, n)["status"] for n in matching} == {"confirmed"}
    assert "confirmed" in b.find_element(By.ID, "message").text


def test_apply_to_similar_shows_the_points_first_then_decides_them_all(server, browser) -> None:
    base, platform = server
    b = browser
    sign_in(b, base, "rita")
    filter_text(b, "AHU-1.VAV-1-01.RHT-VLV")
    row_named(b, "AHU-1.VAV-1-01.RHT-VLV").find_element(By.CSS_SELECTOR, "button.similar").click()
    wait(b, lambda d: d.find_element(By.ID, "similar-dialog").get_attribute("open") is not None)
    listed = [li.text for li in b.find_elements(By.CSS_SELECTOR, "#similar-list li")]
    expected = sorted(
        n for n in (r.name for r in platform.points("hq", limit=1000)[1]) if n.endswith(".RHT-VLV")
    )
    assert len(listed) == len(expected) >= 4
    assert all(any(li.startswith(n + " ") for li in listed) for n in expected)
    assert {stored(platform, n)["status"] for n in expected} == {"suggested"}  # nothing applied yet
    after(b, lambda: b.find_element(By.ID, "similar-apply").click())
    assert {stored(platform, n)["status"] for n in expected} <= {"confirmed", "corrected"}
    assert len({stored(platform, n)["decided"] for n in expected}) == 1


def test_undo_restores_the_suggestion_and_is_recorded(server, browser) -> None:
    base, platform = server
    b = browser
    sign_in(b, base, "rita")
    target = "AHU-1.VAV-1-03.DMPR-POS"
    filter_text(b, target)
    row = row_named(b, target)
    before_class = row.find_element(By.CSS_SELECTOR, "td.class").text
    after(b, lambda: row.find_element(By.CSS_SELECTOR, "button.reject").click())
    assert stored(platform, target)["status"] == "rejected"
    after(b, lambda: b.find_element(By.ID, "undo").click())
    assert stored(platform, target)["status"] == "suggested"
    assert row_named(b, target).find_element(By.CSS_SELECTOR, "td.class").text == before_class
    actions = [h["action"] for h in platform.history("hq", str(stored(platform, target)["iri"]))]
    assert actions == ["reject", "undo"]


def test_viewer_sees_a_read_only_page_and_the_api_refuses_changes(server, browser) -> None:
    base, platform = server
    b = browser
    sign_in(b, base, "victor")
    assert "victor (viewer)" in b.find_element(By.ID, "whoami").text
    first = row_named(b, "AHU-1.MA-T")
    assert not first.find_element(By.CSS_SELECTOR, "button.confirm").is_displayed()
    assert not b.find_element(By.ID, "undo").is_displayed()
    assert first.find_element(By.CSS_SELECTOR, "button.history").is_displayed()
    name = first.find_element(By.CSS_SELECTOR, "td.name").text
    iri = stored(platform, name)["iri"]
    # The page's own token, used the way a script would: refused, nothing stored.
    status = b.execute_script(
        """const r = await fetch('/buildings/hq/decisions', {method: 'POST', headers: {
             'Content-Type': 'application/json',
             'Authorization': 'Bearer ' + sessionStorage.getItem('osed-token')},
           body: JSON.stringify({decisions: [{point: arguments[0], action: 'reject'}]})});
           return r.status;""",
        iri,
    )
    assert status == 403
    assert stored(platform, name)["status"] == "suggested"


def test_a_stale_decision_is_refused_and_the_page_shows_the_new_state(server, browser) -> None:
    base, platform = server
    b = browser
    sign_in(b, base, "rita")
    target = "AHU-1.VAV-1-04.ZN-T"
    filter_text(b, target)
    assert "suggested" in row_named(b, target).find_element(By.CSS_SELECTOR, ".status-cell").text
    # Meanwhile another reviewer corrects the same point.
    from api._service import Decision

    platform.decide(
        "hq", [Decision(point=target, action="correct", brick_class="Temperature_Sensor")], "ralph"
    )
    after(b, lambda: row_named(b, target).find_element(By.CSS_SELECTOR, "button.confirm").click())
    message = b.find_element(By.ID, "message").text
    assert "another reviewer changed" in message and "Temperature_Sensor" in message
    assert "corrected" in row_named(b, target).find_element(By.CSS_SELECTOR, ".status-cell").text
    state = stored(platform, target)
    assert (state["status"], state["decided"]) == ("corrected", "Temperature_Sensor")  # nothing lost
    assert [h["who"] for h in platform.history("hq", str(state["iri"]))] == ["ralph"]


def test_names_with_markup_are_shown_as_text(server, browser) -> None:
    base, _platform = server
    b = browser
    sign_in(b, base, "rita")
    filter_text(b, "<img")
    cell = rows(b)[0].find_element(By.CSS_SELECTOR, "td.name")
    assert cell.text == '<img src=x onerror="window.__pwned=1">'
    assert b.find_elements(By.CSS_SELECTOR, "#points img") == []
    assert "<script>" in rows(b)[0].text
    assert b.execute_script("return window.__pwned === undefined") is True


def test_the_pages_run_under_a_policy_that_refuses_inline_script(server, browser) -> None:
    base, _platform = server
    b = browser
    b.get(f"{base}/")
    assert "Headquarters" in b.find_element(By.TAG_NAME, "body").text
    assert b.execute_script("return getComputedStyle(document.body).maxWidth") != "none"  # home.css
    sign_in(b, base, "rita")
    filter_text(b, "ZN-T")
    b.find_element(By.CSS_SELECTOR, "#history-box summary").click()
    assert csp_reports(b) == []
    # The policy is in force: script put inline into the page does not run, and is reported.
    b.execute_script(
        "const s = document.createElement('script'); s.textContent = 'window.__inline = 1';"
        "document.body.append(s);"
    )
    assert b.execute_script("return window.__inline === undefined") is True
    reports: list[str] = []
    wait(b, lambda d: reports.extend(csp_reports(d)) or reports, timeout=10)
    assert "script-src 'self'" in reports[0]


def test_side_panels_queue_validation_equipment_and_download(server, browser, tmp_path: Path) -> None:
    base, platform = server
    b = browser
    sign_in(b, base, "rita")
    queue = b.find_elements(By.CSS_SELECTOR, "#queue li")
    assert 1 <= len(queue) <= 10
    for panel in ("validation-box", "equipment-box"):
        after(b, lambda panel=panel: b.find_element(By.CSS_SELECTOR, f"#{panel} summary").click(), "panels")
    report = platform.validate_building("hq")
    shown = b.find_element(By.ID, "validation").text
    expected = (
        f"{report.points_checked} points checked"
        if report.conforms
        else f"{len(report.violations)} violation"
    )
    assert expected in shown
    tree = b.find_element(By.ID, "equipment")
    b.execute_script("for (const d of document.querySelectorAll('#equipment details')) d.open = true;")
    text = tree.text
    assert "AHU-1" in text and "VAV-1-01" in text
    # What the model concluded, and from which names, is shown beside each node.
    assert "fed by AHU-1" in text and "inferred: equipment identifier in point names" in text
    assert "s223:AirHandlingUnit" in text
    # VAVs sit under their AHU in the tree.
    ahu = b.find_element(By.XPATH, "//ul[@id='equipment']/li/details[summary[starts-with(., 'AHU-1 ')]]")
    assert "VAV-1-01" in ahu.text
    # Clicking a queued point shows just that point.
    first = b.find_element(By.CSS_SELECTOR, "#queue li a")
    name = first.text
    after(b, first.click, "loaded")
    assert [tr.find_element(By.CSS_SELECTOR, "td.name").text for tr in rows(b)] == [name]
    b.find_element(By.ID, "download").click()
    wait(b, lambda _d: any(tmp_path.glob("hq*.ttl")))
    turtle = next(tmp_path.glob("hq*.ttl")).read_text("utf-8")
    assert "brick:" in turtle and "AHU-1.VAV-1-01.ZN-T" in turtle
    assert platform.store.graphs()  # the download did not change anything


def test_every_point_is_on_a_page_abstained_ones_too_and_they_can_be_corrected(mixed_server, browser) -> None:
    base, platform = mixed_server
    b = browser
    held = stored_points(platform, "mixed")
    sign_in(b, base, "rita", building="mixed")
    shown = lambda: [tr.get_attribute("data-iri") for tr in rows(b)]  # noqa: E731
    info = lambda: b.find_element(By.ID, "page-info").text  # noqa: E731
    first = shown()
    assert (len(first), info()) == (100, f"1–100 of {len(held)}")
    after(b, lambda: b.find_element(By.ID, "next").click(), "loaded")
    second = shown()
    assert info() == f"101–{len(held)} of {len(held)}"
    assert len(first) + len(second) == len(held) and set(first) | set(second) == set(held)

    abstained = {iri for iri, p in held.items() if p["status"] == "abstained"}
    assert len(abstained) >= 5
    filter_text(b, "", status="abstained")
    assert set(shown()) == abstained and info() == f"1–{len(abstained)} of {len(abstained)}"
    assert {tr.find_element(By.CSS_SELECTOR, ".status-cell").text for tr in rows(b)} == {"abstained"}
    target = rows(b)[0]
    iri = target.get_attribute("data-iri")
    assert not target.find_elements(By.CSS_SELECTOR, "button.confirm")  # nothing to confirm
    target.find_element(By.CSS_SELECTOR, "button.correct").click()
    search = b.find_element(By.ID, "class-search")
    search.clear()
    search.send_keys("occupancy sensor")
    wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, "#class-results li[data-cls='Occupancy_Sensor']"))
    wait(
        b,
        lambda d: (
            d.find_element(By.CSS_SELECTOR, "#class-results li[data-cls='Occupancy_Sensor']").click() or True
        ),
    )
    after(b, lambda: b.find_element(By.ID, "correct-apply").click())
    now = stored_points(platform, "mixed")
    assert (now[iri]["status"], now[iri]["classes"]) == ("corrected", {"Occupancy_Sensor"})
    # The relabeling may have labeled look-alikes of it too: the page shows what is left.
    left = {i for i, p in now.items() if p["status"] == "abstained"}
    assert set(shown()) == left and info() == f"1–{len(left)} of {len(left)}"
    # Deciding every row of the last page away from the filter shows the page before it.
    filter_text(b, "", status="suggested")
    suggested = len([p for p in stored_points(platform, "mixed").values() if p["status"] == "suggested"])
    assert suggested > 100 and info() == f"1–100 of {suggested}"
    after(b, lambda: b.find_element(By.ID, "next").click(), "loaded")
    b.find_element(By.ID, "select-all").click()
    after(b, lambda: b.find_element(By.ID, "reject-selected").click())
    left = len([p for p in stored_points(platform, "mixed").values() if p["status"] == "suggested"])
    assert left <= 100 and len(shown()) == left and info() == f"1–{left} of {left}"
