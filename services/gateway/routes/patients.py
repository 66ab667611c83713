"""Patient search, profile and timeline (intake over RPC). Every call is audited."""

from services.gateway import schemas
from services.gateway.http import STAFF, json_response, route


@route("GET", "/api/v1/patients", roles=STAFF, audit=True, query=schemas.PatientSearchQuery)
def find_patients(gw, ctx):
    query = ctx.query(schemas.PatientSearchQuery)
    return json_response(gw.rpc.call("intake", "find_patients", **query))


@route("GET", "/api/v1/patients/<patient_id>", roles=STAFF, audit=True)
def get_patient(gw, ctx, patient_id):
    return json_response(gw.rpc.call("intake", "get_patient", patient_id=patient_id))


@route(
    "GET",
    "/api/v1/patients/<patient_id>/timeline",
    roles=STAFF,
    audit=True,
    query=schemas.PageQuery,
)
def patient_timeline(gw, ctx, patient_id):
    page = ctx.query(schemas.PageQuery)
    return json_response(gw.rpc.call("intake", "timeline", patient_id=patient_id, **page))
