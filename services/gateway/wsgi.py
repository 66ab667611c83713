"""gunicorn entry point: `gunicorn -c deploy/gunicorn.conf.py services.gateway.wsgi:app`."""

import sys

from services.gateway.app import create_app
from shared import tracing
from shared.config import ConfigError

try:
    # OpenTelemetry's WSGI middleware: each request a span, the caller's traceparent its
    # parent (shared/tracing.py); the answer names the trace in X-Trace-Id.
    app = tracing.wsgi(create_app(), "gateway")
except ConfigError as exc:
    print(f"hcrm gateway: {exc}", file=sys.stderr)
    sys.exit(2)
