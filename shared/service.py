"""What every nameko service class has: its validated config and a health RPC."""

from typing import Any

from nameko.extensions import DependencyProvider

from shared.messaging import rpc
from shared.tracing import WorkerTracing


class Config(DependencyProvider):
    """The service's validated configuration (shared.config), read-only."""

    def get_dependency(self, worker_ctx: Any) -> dict[str, Any]:
        return self.container.config["HCRM"]


class HealthMixin:
    name: str  # the service class's nameko name
    config = Config()
    # Every worker a span of the trace it belongs to: its log lines and the events it
    # writes carry the trace id (shared/tracing.py).
    tracing = WorkerTracing()

    @rpc
    def ping(self) -> dict[str, str]:
        """The gateway's /readyz asks every service this: an answer proves the service
        consumes from the broker and its workers run."""
        return {"service": self.name, "status": "ok"}
