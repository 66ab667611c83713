"""The gateway validates statuses, kinds and outcomes at the edge with its own copies (it
imports no service's package, docs/ARCHITECTURE.md rule 1): they must be the services' own."""

from services.appointments import domain as appointments
from services.complaints import domain as complaints
from services.followup import domain as followup
from services.gateway.routes import appointments as appointment_routes
from services.gateway.routes import complaints as complaint_routes
from services.gateway.routes import followups as followup_routes


def test_the_gateway_accepts_what_the_services_declare():
    assert appointment_routes.STATUSES == appointments.STATUSES
    assert complaint_routes.STATUSES == complaints.STATUSES
    assert complaint_routes.SEVERITIES == complaints.SEVERITIES
    assert followup_routes.KINDS == followup.KINDS
    assert followup_routes.STATUSES == followup.STATUSES
    assert followup_routes.OUTCOMES == followup.OUTCOMES
