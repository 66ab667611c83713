"""The gateway: a WSGI app (werkzeug) under gunicorn, the platform's only door.

HTTP in, validation at the edge, RPC (or a confirmed publish) out, one error format out.
Every route declares who may call it; every read of patient data is audited.
"""

import datetime
import logging
import os
import time
import uuid

from nameko.exceptions import RemoteError
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Histogram
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge
from werkzeug.routing import Map, RequestRedirect, Rule
from werkzeug.wrappers import Request

from services.gateway import auth, privacy, routes
from services.gateway.config import GatewayConfig
from services.gateway.http import ROUTES, ApiError, Context, json_response
from services.gateway.ratelimit import RateLimiter
from services.gateway.rpc import RpcPool, ServiceUnavailable
from services.gateway.store import GatewayStore
from shared import tracing
from shared.config import load_config
from shared.errors import REMOTE_STATUS, BadRequest, Conflict, error_body
from shared.errors import NotFound as NotFoundError
from shared.log import setup_logging

log = logging.getLogger("hcrm.gateway")

HTTP_REQUESTS = Counter("hcrm_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_SECONDS = Histogram(
    "hcrm_http_request_seconds",
    "HTTP request time",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def _remote_error(exc, ctx, config):
    """Any other exception raised in a service arrives as RemoteError with its class name:
    REMOTE_STATUS names those with an answer; the rest are the service's failure."""
    status = REMOTE_STATUS.get(exc.exc_type)
    if status is None:
        log.error("service error", extra={"request_id": ctx.request_id, "error": exc.exc_type})
        return ApiError(
            502, "service_error", "A service failed; see its logs.", {"request_id": ctx.request_id}
        )
    return ApiError(status, exc.exc_type.lower(), str(exc.value))


def _internal_error(exc, ctx, config):
    log.exception("unhandled error", extra={"request_id": ctx.request_id})
    return ApiError(500, "internal_error", "Internal error.", {"request_id": ctx.request_id})


# How the gateway answers what a route raises: (exception class, its ApiError built from
# (exc, ctx, config)). The first class the exception is an instance of wins, so a subclass comes
# before its base (RequestEntityTooLarge is an HTTPException) and Exception comes last.
ERROR_ANSWERS = (
    (ApiError, lambda exc, ctx, config: exc),
    (
        RequestEntityTooLarge,
        lambda exc, ctx, config: ApiError(
            413, "body_too_large", f"The body exceeds {config['max_body_bytes']} bytes."
        ),
    ),
    (
        ServiceUnavailable,
        lambda exc, ctx, config: ApiError(
            503, "service_unavailable", str(exc), {"service": exc.service}
        ),
    ),
    (
        BadRequest,
        lambda exc, ctx, config: ApiError(400, "validation_failed", exc.message, exc.details),
    ),
    (NotFoundError, lambda exc, ctx, config: ApiError(404, "not_found", str(exc))),
    (Conflict, lambda exc, ctx, config: ApiError(409, "conflict", str(exc))),
    (RemoteError, _remote_error),
    (HTTPException, lambda exc, ctx, config: ApiError(exc.code, "http_error", exc.description)),
    (Exception, _internal_error),
)


def answer_for(exc, ctx, config):
    """The ApiError that answers `exc`: the first row of ERROR_ANSWERS it matches."""
    build = next(build for cls, build in ERROR_ANSWERS if isinstance(exc, cls))
    return build(exc, ctx, config)


class Gateway:
    def __init__(self, config):
        self.config = config
        self.store = GatewayStore(config)
        self.rpc = RpcPool(config["amqp_uri"], config["rpc_timeout_s"], size=config["threads"])
        self.url_map = Map(
            [Rule(spec.path, endpoint=spec, methods=[spec.method]) for spec in ROUTES]
        )
        self.registry = self._metrics_registry()
        self.limiter = RateLimiter(config["rate_limit_per_minute"], config["rate_limit_burst"])
        privacy.start_audit_retention(self.store, config)  # README.md § Data protection
        if (
            config["admin_username"]
            and config["admin_password"]
            and self.store.create_user(config["admin_username"], config["admin_password"], "admin")
        ):
            log.info("bootstrap admin created", extra={"user": config["admin_username"]})

    @staticmethod
    def _metrics_registry():
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return registry
        return DEFAULT_REGISTRY

    # -- WSGI -----------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        request.max_content_length = self.config["max_body_bytes"]
        request_id = (request.headers.get("X-Request-Id") or uuid.uuid4().hex)[:64]
        ctx = Context(request, request_id)
        started = time.perf_counter()
        route_name = "unmatched"
        try:
            adapter = self.url_map.bind_to_environ(environ)
            spec, args = adapter.match()
            ctx.spec = spec
            route_name = spec.path
            response = self._dispatch(ctx, spec, args)
        except (NotFound, RequestRedirect):  # a redirect: '//' or a missing slash in the path
            response = self._error(ApiError(404, "not_found", "No such route."))
        except MethodNotAllowed:
            response = self._error(ApiError(405, "method_not_allowed", "Method not allowed."))
        elapsed = time.perf_counter() - started
        response.headers["X-Request-Id"] = request_id
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        HTTP_REQUESTS.labels(request.method, route_name, response.status_code).inc()
        HTTP_SECONDS.labels(request.method, route_name).observe(elapsed)
        log.info(
            "request",
            extra={
                "request_id": request_id,
                "method": request.method,
                "route": route_name,
                "status": response.status_code,
                "ms": round(elapsed * 1000, 1),
                "user": ctx.user,
            },
        )
        return response(environ, start_response)

    def _dispatch(self, ctx, spec, args):
        response = self._handle(ctx, spec.handler, spec.roles, args)
        if spec.audit and ctx.user:
            self._audit(ctx, args, response.status_code)
        return response

    def _handle(self, ctx, handler, roles, args):
        try:
            if roles is not None:
                self._authorize(ctx, roles)
            if (
                roles is not None or ctx.spec.method == "POST"
            ):  # not the health checks and static files
                self._limit(ctx)
            return handler(self, ctx, **args)
        except Exception as exc:  # ERROR_ANSWERS' last row logs the unexpected
            return self._error(answer_for(exc, ctx, self.config))

    def _authorize(self, ctx, roles):
        header = ctx.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        api_key = ctx.request.headers.get("X-API-Key")
        if api_key and not token:
            record = self.store.api_key_principal(api_key.strip())
            if record is None:
                raise ApiError(401, "unauthorized", "The API key is invalid or revoked.")
            ctx.user, ctx.role = f"key:{record['_id']}:{record['name']}", record["role"]
        elif scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthorized", "A bearer token or an X-API-Key is required.")
        else:
            try:
                claims = auth.verify_token(self.config["jwt_secret"], token.strip())
            except auth.Unauthorized:
                raise ApiError(401, "unauthorized", "The token is invalid or expired.") from None
            ctx.user, ctx.role = claims["sub"], claims["role"]
        if not auth.role_allows(ctx.role, roles):
            raise ApiError(403, "forbidden", f"Role {ctx.role!r} may not use this route.")

    def _limit(self, ctx):
        caller = ctx.user or f"addr:{ctx.request.remote_addr}"
        wait = self.limiter.acquire(caller)
        if wait:
            raise ApiError(
                429,
                "rate_limited",
                "Too many requests; slow down.",
                {"retry_after_s": round(wait, 3)},
            )

    def _audit(self, ctx, args, status):
        # HIPAA technical safeguards: who read which record, when, through which route, outcome.
        self.store.audit(
            {
                "at": datetime.datetime.now(datetime.UTC),
                "user": ctx.user,
                "role": ctx.role,
                "method": ctx.request.method,
                "route": ctx.request.path,
                "patient_id": args.get("patient_id") or ctx.patient_id,
                # The searched name, phone or MRN masked (privacy.audit_query,
                # README § Data protection).
                "query": privacy.audit_query(ctx.request.args),
                "query_masked": True,
                "status": status,
                "request_id": ctx.request_id,
                "remote_addr": ctx.request.remote_addr,
                **getattr(ctx, "audit_extra", {}),  # what a route adds (an erasure: its id and why)
            }
        )

    @staticmethod
    def _error(exc):
        headers = None
        if exc.status == 429 and exc.details.get("retry_after_s"):
            headers = {"Retry-After": str(max(1, round(exc.details["retry_after_s"])))}
        return json_response(error_body(exc.code, exc.message, exc.details), exc.status, headers)


def create_app(config=None):
    routes.load_all()
    config = config or load_config("gateway", GatewayConfig)
    setup_logging("gateway", config["log_level"])
    tracing.setup("gateway")  # before the store's MongoClient (shared/tracing.py)
    return Gateway(config)
