"""docs/asyncapi.yaml is generated from shared/events.py and must not drift from it."""

import pathlib

import yaml

from shared.asyncapi import document, render
from shared.events import DATA_SCHEMAS

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


def test_the_committed_document_is_the_generated_one():
    assert DOC.read_text(encoding="utf-8") == render(), "run: hcrm asyncapi > docs/asyncapi.yaml"


def test_it_describes_every_inbound_type_with_its_required_fields():
    doc = yaml.safe_load(DOC.read_text(encoding="utf-8"))
    assert set(doc["components"]["messages"]) == set(DATA_SCHEMAS)
    visited = doc["components"]["messages"]["PatientVisited"]["payload"]["allOf"][1]
    assert {"patient", "visit_id", "department", "visit_type", "visited_at"} <= set(
        visited["properties"]["data"]["required"]
    )
    assert document()["components"]["schemas"]["Envelope"]["required"] == [
        "event_id",
        "event_type",
        "occurred_at",
        "source",
        "data",
    ]
