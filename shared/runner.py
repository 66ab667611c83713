"""Runs one service process: `hcrm run <service>` (what `nameko run` does, plus validated
config, JSON logs, the topology declared before consuming, and a clean stop on SIGTERM)."""

import eventlet

# Before every other import: what they import must see the patched socket, threading, time.
eventlet.monkey_patch()

import importlib  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

from nameko.runners import ServiceRunner  # noqa: E402

from shared import tracing  # noqa: E402
from shared.config import ConfigError, load_config  # noqa: E402
from shared.log import setup_logging  # noqa: E402
from shared.topology import available_services, declare_topology  # noqa: E402

log = logging.getLogger("hcrm.runner")


def service_class(name: str) -> type[Any]:
    """services/<name>/service.py holds the one class whose `name` is <name>."""
    if name not in available_services():
        raise SystemExit(f"unknown service {name!r}; known: {', '.join(available_services())}")
    module = importlib.import_module(f"services.{name}.service")
    return next(
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and getattr(obj, "name", None) == name
        and hasattr(obj, "config_schema")
    )


def nameko_config(config: dict[str, Any]) -> dict[str, Any]:
    return {
        "AMQP_URI": config["amqp_uri"],
        "max_workers": config["max_workers"],
        "parent_calls_tracked": 10,
        "serializer": "json",
        "HCRM": config,
    }


def run(name: str) -> None:
    cls = service_class(name)
    try:
        config = load_config(name, cls.config_schema)
    except ConfigError as exc:
        print(f"hcrm {name}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging(name, config["log_level"])
    # Before any MongoClient exists: pymongo's spans (when exporting) hook clients made after.
    tracing.setup(name)
    declare_topology(config)
    runner = ServiceRunner(nameko_config(config))
    runner.add_service(cls)

    def stop(signum: int, frame: object) -> None:
        log.info("stopping", extra={"signal": signum})
        eventlet.spawn_n(runner.stop)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    runner.start()
    log.info("service started", extra={"service": name, "metrics_port": config["metrics_port"]})
    runner.wait()
    log.info("service stopped", extra={"service": name})


if __name__ == "__main__":
    run(sys.argv[1])
