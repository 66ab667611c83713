"""Health, readiness and metrics: for orchestrators and ops, no token."""

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wrappers import Response

from services.gateway.http import json_response, route
from services.gateway.rpc import ServiceUnavailable


@route("GET", "/healthz")
def healthz(gw, ctx):
    return json_response({"status": "ok"})


@route("GET", "/readyz")
def readyz(gw, ctx):
    """200 when the broker, the gateway's store and every configured service answer."""
    checks = {}
    for service in gw.config["services"]:
        try:
            gw.rpc.call(service, "ping")
            checks[service] = "ok"
        except ServiceUnavailable as exc:
            checks[service] = exc.reason
        except Exception as exc:  # a broken broker connection, a failing service
            checks[service] = f"{exc.__class__.__name__}: {exc}"[:200]
    try:
        gw.store.db.command("ping")
        checks["store"] = "ok"
    except Exception as exc:
        checks["store"] = exc.__class__.__name__
    down = sorted(name for name, state in checks.items() if state != "ok")
    body = {"status": "unavailable" if down else "ready", "checks": checks, "down": down}
    return json_response(body, 503 if down else 200)


@route("GET", "/metrics", content_type="text/plain; version=0.0.4; charset=utf-8")
def metrics(gw, ctx):
    return Response(generate_latest(gw.registry), content_type=CONTENT_TYPE_LATEST)
