"""Administration: users, integration API keys and the audit log."""

import datetime

from services.gateway import schemas
from services.gateway.http import ADMINS, ApiError, json_response, route


@route("POST", "/api/v1/users", roles=ADMINS, body=schemas.UserCreate, status=201)
def create_user(gw, ctx):
    user = ctx.body(schemas.UserCreate)
    if not gw.store.create_user(user["username"], user["password"], user["role"]):
        raise ApiError(409, "conflict", f"User {user['username']!r} exists.")
    return json_response({"username": user["username"], "role": user["role"]}, 201)


@route("GET", "/api/v1/audit", roles=ADMINS, query=schemas.AuditQuery)
def audit_log(gw, ctx):
    query = ctx.query(schemas.AuditQuery)
    page = {"limit": query.pop("limit"), "offset": query.pop("offset")}
    items, total = gw.store.audit_entries(query, **page)
    return json_response({"items": items, "total": total})


@route("POST", "/api/v1/integration-keys", roles=ADMINS, body=schemas.ApiKeyCreate, status=201)
def create_api_key(gw, ctx):
    """Create an integration key; the key itself is in this answer only, never again."""
    body = ctx.body(schemas.ApiKeyCreate)
    key, record = gw.store.create_api_key(
        body["name"], ctx.user, datetime.datetime.now(datetime.UTC)
    )
    return json_response({**record, "key": key}, 201)


@route("GET", "/api/v1/integration-keys", roles=ADMINS, query=schemas.PageQuery)
def list_api_keys(gw, ctx):
    """Integration keys, newest first (without the keys)."""
    page = ctx.query(schemas.PageQuery)
    items, total = gw.store.api_keys(page["limit"], page["offset"])
    return json_response({"items": items, "total": total})


@route("DELETE", "/api/v1/integration-keys/<key_id>", roles=ADMINS)
def revoke_api_key(gw, ctx, key_id):
    """Revoke a key: its next request gets 401."""
    record = gw.store.revoke_api_key(key_id, ctx.user, datetime.datetime.now(datetime.UTC))
    if record is None:
        raise ApiError(404, "not_found", f"No integration key {key_id!r}.")
    return json_response(record)
