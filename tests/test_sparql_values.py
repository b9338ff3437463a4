"""No caller's value is written into SPARQL as query text: IRIs are checked to be IRIs (else
400), text becomes escaped string literals."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api._service import Decision, Platform
from api.app import create_app
from mapper import RawPoint, read_points
from ontology import is_sparql_iri, sparql_string
from tests.conftest import FIXTURES


# -- nothing a caller sends becomes SPARQL ---------------------------------------------------
def test_history_point_is_an_iri_or_refused_never_query_text(platform: Platform) -> None:
    platform.settings.api.anonymous_role = "viewer"
    platform.import_points("hq", read_points(FIXTURES / "small_building.csv"))
    platform.import_points("other", [RawPoint("SECRET-1"), RawPoint("SECRET-2")])
    decided = platform.decide("hq", [Decision(point="AHU-1.SF-STS", action="reject")], "rita")
    assert decided.decided == 1
    point = platform.points("hq", text="SF-STS")[1][0].iri
    # Closes the IRI, reads another building's graph into ?prev, comments out the rest.
    injected = (
        f"{point}> ; osed:action ?action ; prov:endedAtTime ?when ; prov:wasAssociatedWith ?u . "
        "?u rdfs:label ?who . } GRAPH <urn:osed:other> { ?s osed:rawName ?prev } OPTIONAL { ?zz #"
    )
    with TestClient(create_app(platform.settings, platform=platform)) as c:
        assert len(c.get("/buildings/hq/history", params={"point": point}).json()) == 1
        r = c.get("/buildings/hq/history", params={"point": injected})
        assert r.status_code == 400, r.text
        assert "SECRET" not in r.text
        for bad in ("not an iri", "urn:x>", "urn:a b", "urn:a\\u003E"):
            assert c.get("/buildings/hq/history", params={"point": bad}).status_code == 400


def test_text_filters_are_string_literals_whatever_they_hold(platform: Platform) -> None:
    platform.settings.api.anonymous_role = "viewer"
    odd = 'VAV "7" \\ \\u0022) } #'
    platform.import_points("hq", [RawPoint("AHU-1.ZN-T"), RawPoint("RM-1", description=odd)])
    with TestClient(create_app(platform.settings, platform=platform)) as c:
        # 199 characters and a quote: escaped then cut to 200, it once ended in a backslash.
        edge = "a" * 199 + '"'
        r = c.get("/buildings/hq/points", params={"q": edge})
        assert r.status_code == 200 and r.json()["total"] == 0
        found = c.get("/buildings/hq/points", params={"q": odd}).json()
        assert [p["name"] for p in found["items"]] == ["RM-1"]
        r = c.get("/buildings/hq/points", params={"equipment": 'x" } } UNION { ?p ?q "'})
        assert r.status_code == 200 and r.json()["total"] == 0


def test_sparql_terms_hold_exactly_what_they_are_given() -> None:
    import pyoxigraph as ox

    store = ox.Store()
    for text in ('a"b', "back\\slash", "new\nline\r", "\\u0022) } #", "é \u2028"):
        rows = list(store.query(f"SELECT ?x WHERE {{ BIND({sparql_string(text)} AS ?x) }}"))
        assert [r["x"].value for r in rows] == [text]
    assert is_sparql_iri("urn:osed:hq/point/AHU-1_0123456789") and is_sparql_iri("https://x.org/a#b")
    for bad in ("hq", "urn:a b", "urn:a>", "urn:a\\u003E", "urn:a{b}", "urn:\x00"):
        assert not is_sparql_iri(bad)
