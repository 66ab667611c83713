"""Administration: users (and integration accounts) and the audit log."""
from services.gateway import schemas
from services.gateway.http import ADMINS, ApiError, json_response, route


@route("POST", "/api/v1/users", roles=ADMINS)
def create_user(gw, ctx):
    user = ctx.load(schemas.UserCreate, ctx.json_body())
    if not gw.store.create_user(user["username"], user["password"], user["role"]):
        raise ApiError(409, "conflict", f"User {user['username']!r} exists.")
    return json_response({"username": user["username"], "role": user["role"]}, 201)


@route("GET", "/api/v1/audit", roles=ADMINS)
def audit_log(gw, ctx):
    query = ctx.query(schemas.AuditQuery)
    page = {"limit": query.pop("limit"), "offset": query.pop("offset")}
    items, total = gw.store.audit_entries(query, **page)
    return json_response({"items": items, "total": total})
