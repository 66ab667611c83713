"""gunicorn settings for the gateway, taken from the validated HCRM config (gateway section).

Production: `gunicorn -c deploy/gunicorn.conf.py services.gateway.wsgi:app`.
gthread workers: requests wait on RPC replies (I/O), so threads per worker give concurrency
without eventlet in the web tier; each thread borrows a pooled RPC proxy.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from services.gateway.config import GatewayConfig
from shared.config import ConfigError, load_config

try:
    _config = load_config("gateway", GatewayConfig)
except ConfigError as exc:
    print(f"hcrm gateway: {exc}", file=sys.stderr)
    sys.exit(2)

bind = f"{_config['host']}:{_config['port']}"
workers = _config["workers"]
threads = _config["threads"]
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
keepalive = 5
# Request lines and headers are bounded; bodies are bounded by the app (max_body_bytes: 413).
limit_request_line = 8190
limit_request_fields = 100
accesslog = None  # the app logs each request as JSON, with its request id and masked data
errorlog = "-"
loglevel = _config["log_level"].lower()
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# One /metrics for all workers: prometheus-client's multiprocess mode.
_multiproc_dir = _config["prometheus_dir"] or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if not _multiproc_dir:
    _multiproc_dir = tempfile.mkdtemp(prefix="hcrm-gateway-metrics-")
os.makedirs(_multiproc_dir, exist_ok=True)
for _stale in os.listdir(_multiproc_dir):
    os.remove(os.path.join(_multiproc_dir, _stale))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _multiproc_dir


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
