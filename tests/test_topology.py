"""223P topology and Brick locations from what a point list tells (issue 16, part 1).

The list is labeled by the real agent and modelled by the real mapper; the assertions are
SPARQL over the model, as a 223P or Brick user would ask.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from rdflib import Graph

from agent import ClassRetriever, LabelingAgent
from mapper import EquipmentRef, LabeledPoint, RawPoint, build_model
from ontology import PREFIXES, Ontology

LIST = [
    ("AHU-1.SA-T", "°F", "AI"),
    ("AHU-1.RA-T", "°F", "AI"),
    ("AHU-1.SF-1.STS", "", "BI"),
    ("AHU-1.SF-1.CMD", "", "BO"),
    ("AHU-1.VAV-1-01.ZN-T", "°F", "AI"),
    ("AHU-1.VAV-1-01.DMPR-CMD", "%", "AO"),
    ("AHU-1.VAV-1-01.RM-101.ZN-T", "°F", "AI"),
    ("AHU-1.VAV-1-02.SA-FLOW", "cfm", "AI"),
    ("CH-1.CHWS-T", "°F", "AI"),
    ("FL-2.RM-201.ZN-T", "°F", "AI"),
    ("MTR-MAIN kW", "kW", "AI"),
]


@pytest.fixture(scope="module")
def model(ontology: Ontology) -> Graph:
    raw = [RawPoint(n, unit=u or None, object_type=t) for n, u, t in LIST]
    return build_model("b1", label(ontology, raw), ontology)


def label(ontology: Ontology, raw: list[RawPoint]) -> list[LabeledPoint]:
    suggestions = LabelingAgent(ontology).suggest(raw)
    return [LabeledPoint(p, s) for p, s in zip(raw, suggestions, strict=True)]


def ask(g: Graph, query: str) -> Any:
    """Rows of a SELECT (sorted, as strings), or the answer of an ASK."""
    head = "".join(f"PREFIX {k}: <{v}>\n" for k, v in PREFIXES.items())
    head += "PREFIX rec: <https://w3id.org/rec#>\n"
    result = g.query(head + query)
    if result.type == "ASK":
        return bool(result.askAnswer)
    return sorted(tuple(str(x) for x in row) for row in result)  # type: ignore[union-attr]


def test_equipment_gets_its_223p_class_and_ports_with_their_medium(model: Graph) -> None:
    rows = ask(
        model,
        """SELECT ?label ?cls WHERE { ?e a ?cls ; rdfs:label ?label .
             FILTER(?cls IN (s223:AirHandlingUnit, s223:Fan, s223:SingleDuctTerminal, s223:TerminalUnit,
                             s223:Chiller, s223:Damper)) }""",
    )
    s223 = "http://data.ashrae.org/standard223#"
    assert ("AHU-1", s223 + "AirHandlingUnit") in rows
    assert ("SF-1", s223 + "Fan") in rows
    assert ("CH-1", s223 + "Chiller") in rows
    # The box with a damper point is a single-duct terminal and contains that damper; the
    # one whose points show no damper stays a terminal unit (nothing made up).
    assert ("VAV-1-01", s223 + "SingleDuctTerminal") in rows
    assert ("VAV-1-02", s223 + "TerminalUnit") in rows
    assert ("VAV-1-01 damper", s223 + "Damper") in rows
    assert not [r for r in rows if r[0] == "VAV-1-02 damper"]
    # The damper says it was inferred from the damper point, not from the box's other points.
    assert ask(model, 'SELECT ?n WHERE { ?d rdfs:label "VAV-1-01 damper" ; osed:inferredFrom ?n }') == [
        ("AHU-1.VAV-1-01.DMPR-CMD",)
    ]
    ports = ask(
        model,
        """SELECT ?label ?kind ?medium WHERE { ?e rdfs:label ?label ; s223:hasConnectionPoint ?cp .
             ?cp a ?kind ; s223:hasMedium ?medium . FILTER(?label IN ("AHU-1", "CH-1")) }""",
    )
    assert ports == [
        ("AHU-1", s223 + "InletConnectionPoint", s223 + "Fluid-Air"),
        ("AHU-1", s223 + "OutletConnectionPoint", s223 + "Fluid-Air"),
        ("CH-1", s223 + "InletConnectionPoint", s223 + "Fluid-Water"),
        ("CH-1", s223 + "OutletConnectionPoint", s223 + "Fluid-Water"),
    ]


def test_a_duct_joins_the_air_handler_to_the_boxes_named_under_it(model: Graph) -> None:
    rows = ask(
        model,
        """SELECT ?to WHERE { ?d a s223:Duct ; s223:hasMedium s223:Fluid-Air ;
             s223:connectsFrom/rdfs:label "AHU-1" ; s223:connectsTo/rdfs:label ?to ;
             s223:cnx ?out . ?out s223:isConnectionPointOf/rdfs:label "AHU-1" ; a s223:OutletConnectionPoint }""",
    )
    assert rows == [("VAV-1-01",), ("VAV-1-02",)]
    # The fan named under the air handler is a part it contains, not something it feeds.
    assert ask(
        model, 'ASK { ?a rdfs:label "AHU-1" ; s223:contains ?f ; brick:hasPart ?f . ?f rdfs:label "SF-1" }'
    )
    assert not ask(model, 'ASK { ?a rdfs:label "AHU-1" ; brick:feeds ?f . ?f rdfs:label "SF-1" }')
    assert ask(
        model, 'ASK { ?a rdfs:label "AHU-1" ; brick:feeds ?v . ?v rdfs:label "VAV-1-01" ; brick:isFedBy ?a }'
    )


def test_properties_sensors_and_actuation(model: Graph) -> None:
    # Every point belongs to something through s223:hasProperty.
    assert ask(model, "SELECT (COUNT(DISTINCT ?p) AS ?n) WHERE { ?x s223:hasProperty ?p }") == [
        (str(len(LIST)),)
    ]
    # A supply reading is observed at the air handler's outlet.
    assert ask(
        model,
        """ASK { ?p rdfs:label "AHU-1.SA-T" . ?s a s223:Sensor ; s223:observes ?p ;
                 s223:hasObservationLocation ?cp . ?cp a s223:OutletConnectionPoint ;
                 s223:isConnectionPointOf/rdfs:label "AHU-1" }""",
    )
    # The damper command is a property of the damper the box contains, which it actuates.
    assert ask(
        model,
        """ASK { ?p rdfs:label "AHU-1.VAV-1-01.DMPR-CMD" . ?d a s223:Damper ; s223:hasProperty ?p ;
                 s223:actuatedByProperty ?p . ?v rdfs:label "VAV-1-01" ; s223:contains ?d }""",
    )
    # The fan's command actuates the fan.
    assert ask(model, 'ASK { ?f rdfs:label "SF-1" ; s223:actuatedByProperty/rdfs:label "AHU-1.SF-1.CMD" }')


def test_rooms_floors_and_the_zone_a_box_serves(model: Graph) -> None:
    # FL-2.RM-201: a room that is part of its floor, part of the building.
    assert ask(
        model,
        """ASK { ?b a rec:Building ; brick:hasPart ?f . ?f a rec:Level, s223:PhysicalSpace ; rdfs:label "FL-2" ;
                 brick:hasPart ?r ; s223:contains ?r . ?r a rec:Room, s223:PhysicalSpace ; rdfs:label "RM-201" }""",
    )
    # A point that names only a room is a point of that room (Brick: points have no location).
    assert ask(model, 'ASK { ?p rdfs:label "FL-2.RM-201.ZN-T" ; brick:isPointOf/rdfs:label "RM-201" }')
    assert not ask(model, "ASK { ?p osed:rawName ?n ; brick:hasLocation ?l }")
    # The box whose points name RM-101 serves that room's HVAC zone; its zone points are
    # the zone's properties, observed in the zone's domain space.
    assert ask(
        model,
        """ASK { ?v rdfs:label "VAV-1-01" ; brick:hasLocation ?r ; brick:feeds ?z .
                 ?z a s223:Zone, rec:HVACZone ; s223:hasDomain s223:Domain-HVAC ; s223:hasDomainSpace ?d ;
                    s223:hasProperty/rdfs:label "AHU-1.VAV-1-01.ZN-T" .
                 ?r rdfs:label "RM-101" ; s223:encloses ?d . ?d a s223:DomainSpace ;
                    s223:hasConnectionPoint/s223:cnx/s223:connectsFrom ?v .
                 ?s s223:observes/rdfs:label "AHU-1.VAV-1-01.ZN-T" ; s223:hasObservationLocation ?d }""",
    )
    # No deprecated Brick location classes.
    assert not ask(
        model, "ASK { ?x a ?c . FILTER(?c IN (brick:Building, brick:Floor, brick:Room, brick:HVAC_Zone)) }"
    )


def test_what_is_inferred_says_from_which_names(model: Graph) -> None:
    made = ask(
        model,
        """SELECT ?x WHERE { ?x a ?c . FILTER(?c IN (s223:Duct, s223:Zone, s223:DomainSpace, s223:Sensor,
               s223:PhysicalSpace, s223:Damper, s223:AirHandlingUnit)) FILTER NOT EXISTS { ?x osed:inferredFrom ?n } }""",
    )
    assert made == []
    assert ask(
        model,
        """ASK { ?d a s223:Duct ; osed:inference ?why ; osed:inferredFrom ?names .
                 FILTER(CONTAINS(?names, "VAV-1-01") && CONTAINS(?why, "terminal units")) }""",
    )


def test_a_meter_named_by_a_word_is_equipment(model: Graph) -> None:
    assert ask(
        model,
        'ASK { ?p rdfs:label "MTR-MAIN kW" ; brick:isPointOf ?m . ?m a brick:Electrical_Meter ; rdfs:label "MTR-MAIN" }',
    )


def test_a_flat_list_gets_no_ducts_or_zones(ontology: Ontology) -> None:
    """Nothing in these names says what serves what: no connections, no zones are made up."""
    raw = [
        RawPoint("VAV-1-01.ZN-T", unit="°F"),
        RawPoint("AHU-1.SA-T", unit="°F"),
        RawPoint("RM-101 CO2", unit="ppm"),
    ]
    g = build_model("b2", label(ontology, raw), ontology)
    assert not ask(g, "ASK { ?x a ?c . FILTER(?c IN (s223:Duct, s223:Zone, s223:DomainSpace)) }")


@pytest.mark.parametrize(
    ("name", "unit", "owner", "s223", "ports"),
    [
        ("BATT-1.SOC", "%", "BATT-1", "Battery", [("OutletConnectionPoint", "Electricity-DC")]),
        (
            "CHWP-1.STS",
            None,
            "CHWP-1",
            "Pump",
            [("InletConnectionPoint", "Fluid-Water"), ("OutletConnectionPoint", "Fluid-Water")],
        ),
    ],
)
def test_connection_points_carry_the_medium_223p_asks_of_the_class(
    ontology: Ontology, name: str, unit: str | None, owner: str, s223: str, ports: list[tuple[str, str]]
) -> None:
    g = build_model("b3", label(ontology, [RawPoint(name, unit=unit)]), ontology)
    ns = "http://data.ashrae.org/standard223#"
    assert ask(g, f'ASK {{ ?e rdfs:label "{owner}" ; a s223:{s223} }}')
    found = ask(
        g,
        f"""SELECT ?kind ?medium WHERE {{ ?e rdfs:label "{owner}" ; s223:hasConnectionPoint ?cp .
              ?cp a ?kind ; s223:hasMedium ?medium }}""",
    )
    assert found == [(ns + k, ns + m) for k, m in ports]


def test_retrieval_over_223p_types_equipment_the_mapper_has_no_class_for(
    ontology: Ontology, retriever: ClassRetriever
) -> None:
    """A Brick class with no 223P counterpart in the mapper's table gets the 223P class
    retrieval finds closest, when it is close enough and 223P asks of it only connection
    points the model can give; otherwise it stays s223:Equipment."""
    agent = LabelingAgent(ontology, retriever=retriever)
    refs = [
        EquipmentRef("Solar_Thermal_Collector", "STC-1"),  # 223P SolarThermalCollector
        EquipmentRef("Electrical_Meter", "MTR-1"),  # 223P's meter must contain its sensors
        EquipmentRef("Heat_Exchanger", "HX-1"),  # air or water? not alike enough to say
    ]
    raw = [RawPoint(f"{r.name} Temp", unit="°C") for r in refs]
    suggestions = agent._with_s223_equipment(
        [replace(s, equipment=r) for s, r in zip(agent.suggest(raw), refs, strict=True)]
    )
    chosen = {s.equipment.name: s.equipment.s223_class for s in suggestions if s.equipment}
    assert chosen == {"STC-1": "SolarThermalCollector", "MTR-1": None, "HX-1": None}
    g = build_model("b4", [LabeledPoint(p, s) for p, s in zip(raw, suggestions, strict=True)], ontology)
    ns = "http://data.ashrae.org/standard223#"
    assert ask(
        g,
        """SELECT ?kind ?medium WHERE { ?e rdfs:label "STC-1" ; a s223:SolarThermalCollector ;
             s223:hasConnectionPoint ?cp . ?cp a ?kind ; s223:hasMedium ?medium }""",
    ) == [(ns + "InletConnectionPoint", ns + "EM-Light"), (ns + "OutletConnectionPoint", ns + "Fluid-Water")]
    assert ask(
        g,
        'ASK { ?e rdfs:label "STC-1" ; osed:inference ?why . FILTER(CONTAINS(?why, "retrieval over 223P")) }',
    )
    assert ask(
        g,
        'ASK { ?e rdfs:label "MTR-1" ; a s223:Equipment . FILTER NOT EXISTS { ?e a s223:ElectricityMeter } }',
    )


def test_a_pump_named_under_a_chiller_gets_a_water_pipe(ontology: Ontology) -> None:
    raw = [RawPoint("CH-1.CHWS-T", unit="°F"), RawPoint("CH-1.CHWP-1.STS", object_type="BI")]
    g = build_model("b5", label(ontology, raw), ontology)
    assert ask(
        g,
        """ASK { ?p a s223:Pipe ; s223:hasMedium s223:Fluid-Water ; s223:connectsFrom/rdfs:label "CH-1" ;
                 s223:connectsTo/rdfs:label "CHWP-1" ; osed:inferredFrom ?names }""",
    )
    assert not ask(g, "ASK { ?d a s223:Duct }")


def test_a_difference_gets_no_sensor_without_its_two_places(ontology: Ontology) -> None:
    """223P locates a differential sensor at two places; a filter's pressure drop names
    neither, so the reading is the AHU's property and no sensor is made up."""
    g = build_model("b6", label(ontology, [RawPoint("AHU-1.FILT-DP", unit="inH2O")]), ontology)
    assert ask(g, 'ASK { ?a rdfs:label "AHU-1" ; s223:hasProperty ?p . ?p qudt:isDeltaQuantity true }')
    assert not ask(g, "ASK { ?s a s223:Sensor }")
