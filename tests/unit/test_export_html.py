"""The readable page of a patient's export (services/gateway/export_html.py): every section a
service answered, every value escaped."""
from services.gateway import export_html

EXPORT = {
    "patient_id": "p1", "patient_ids": ["p1", "p0"], "mrns": ["M-1"], "generated_by": "zhao.lei",
    "intake": {"record": {"name": "王<b>芳</b>", "phone": "13800000000"},
               "events": [{"event_type": "PatientVisited", "data": {"patient": {"name": "<script>alert(1)</script>"}}}]},
    "followup": {"tasks": [{"kind": "post_visit_call", "notes": "line one\nline two"}], "events": []},
    "hl7": {"messages": [{"control_id": "C1", "raw": "MSH|^~\\&|HIS\rPID|1||M-1"}], "remembered_visits": []},
    "gateway": {"audit": [{"user": "li.na", "route": "/api/v1/patients/p1", "status": 200}]},
}


def test_every_section_a_service_answered_is_shown_and_nothing_is_markup():
    page = export_html.render(EXPORT)
    assert page.startswith("<!doctype html>") and page.endswith("</html>")
    assert "<script>" not in page and "&lt;script&gt;" in page and "王&lt;b&gt;芳&lt;/b&gt;" in page
    for heading in ("Record and events", "Follow-ups", "HL7 messages", "Who used the record"):
        assert heading in page
    assert "Appointments" not in page  # not asked (the installation has no such service)
    assert "C1" in page and "li.na" in page and "M-1" in page and "<pre>line one\nline two</pre>" in page


def test_an_empty_list_says_none():
    page = export_html.render({"patient_id": "p", "complaints": {"complaints": []}})
    assert "无 · None" in page
