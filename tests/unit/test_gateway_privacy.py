"""The gateway's part of the data rights: the readable page of a patient's export
(services/gateway/export_html.py: every section a service answered, every value escaped) and
the audit's masked search queries (services/gateway/privacy.py)."""

from services.gateway import export_html

EXPORT = {
    "patient_id": "p1",
    "patient_ids": ["p1", "p0"],
    "mrns": ["M-1"],
    "generated_by": "zhao.lei",
    "intake": {
        "record": {"name": "王<b>芳</b>", "phone": "13800000000"},
        "events": [
            {
                "event_type": "PatientVisited",
                "data": {"patient": {"name": "<script>alert(1)</script>"}},
            }
        ],
    },
    "followup": {
        "tasks": [{"kind": "post_visit_call", "notes": "line one\nline two"}],
        "events": [],
    },
    "hl7": {
        "messages": [{"control_id": "C1", "raw": "MSH|^~\\&|HIS\rPID|1||M-1"}],
        "remembered_visits": [],
    },
    "gateway": {"audit": [{"user": "li.na", "route": "/api/v1/patients/p1", "status": 200}]},
}


def test_every_section_a_service_answered_is_shown_and_nothing_is_markup():
    page = export_html.render(EXPORT)
    assert page.startswith("<!doctype html>") and page.endswith("</html>")
    assert "<script>" not in page and "&lt;script&gt;" in page and "王&lt;b&gt;芳&lt;/b&gt;" in page
    for heading in ("Record and events", "Follow-ups", "HL7 messages", "Who used the record"):
        assert heading in page
    assert "Appointments" not in page  # not asked (the installation has no such service)
    assert (
        "C1" in page
        and "li.na" in page
        and "M-1" in page
        and "<pre>line one\nline two</pre>" in page
    )


def test_an_empty_list_says_none():
    page = export_html.render({"patient_id": "p", "complaints": {"complaints": []}})
    assert "无 · None" in page


def test_the_audit_keeps_a_search_but_not_whom_it_was_for():
    from werkzeug.datastructures import MultiDict

    from services.gateway.privacy import audit_query

    kept = audit_query(
        MultiDict(
            [
                ("q", "欧阳娜娜"),
                ("phone", "139-1234-0001"),
                ("mrn", "DR-P-1"),
                ("limit", "100"),
                ("note", "call 13912340001"),
            ]
        )
    )
    assert kept == "q=%E6%AC%A7***&phone=*******0001&mrn=DR****&limit=100&note=call+*******0001"
    assert audit_query(MultiDict()) is None
