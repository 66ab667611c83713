"""gunicorn entry point: `gunicorn -c deploy/gunicorn.conf.py services.gateway.wsgi:app`."""
import sys

from services.gateway.app import create_app
from shared.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    print(f"hcrm gateway: {exc}", file=sys.stderr)
    sys.exit(2)
