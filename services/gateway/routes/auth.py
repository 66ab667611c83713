"""Login: username and password for a short-lived bearer token."""

import datetime

from services.gateway import auth, schemas
from services.gateway.http import ApiError, json_response, route


@route("POST", "/api/v1/auth/token", body=schemas.TokenRequest)
def token(gw, ctx):
    creds = ctx.body(schemas.TokenRequest)
    now = datetime.datetime.now(datetime.UTC)
    if gw.store.login_locked(creds["username"], gw.config["login_max_failures"], now):
        raise ApiError(429, "too_many_attempts", "Too many failed logins; try again later.")
    user = gw.store.authenticate(creds["username"], creds["password"])
    if user is None:
        gw.store.record_login_failure(creds["username"], gw.config["login_lockout_s"], now)
        raise ApiError(401, "unauthorized", "Wrong username or password.")
    gw.store.clear_login_failures(creds["username"])
    ttl = gw.config["token_ttl_s"]
    return json_response(
        {
            "access_token": auth.issue_token(
                gw.config["jwt_secret"], user["_id"], user["role"], ttl
            ),
            "token_type": "bearer",
            "expires_in": ttl,
        }
    )
