"""One config loader for every process: defaults < YAML file < environment, validated.

Precedence, lowest first:
  1. the schema's defaults;
  2. the YAML file named by HCRM_CONFIG (default DEFAULT_CONFIG_FILE, the project's
     deploy/config/hcrm.yaml): its `common:` section, then the section named after the
     process (`intake:`, `gateway:`, ...);
  3. environment: HCRM_<FIELD> for every process, then <PROCESS>_<FIELD> for one process
     (INTAKE_MONGO_URI beats HCRM_MONGO_URI).
Secrets (fields with metadata secret=True) are taken from the environment only: a secret in
the YAML file is itself a configuration error. A bad value raises ConfigError naming the key,
and the runners turn that into a message and exit status 2.
"""

import json
import os
import pathlib
import urllib.parse
import zoneinfo
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates,
    validates_schema,
)

from shared.errors import flatten_errors

# The folder that holds shared/: the top of a checkout (site-packages once installed).
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
# The YAML file read when HCRM_CONFIG is not set: the settings `make up` and the tests run
# with. Resolved from this file, not the working directory, so every command finds it from
# any folder. An installed package has no deploy/config/ next to it: the image sets
# HCRM_CONFIG (Dockerfile), and a missing file is a ConfigError, never a silent default.
DEFAULT_CONFIG_FILE = REPO_ROOT / "deploy" / "config" / "hcrm.yaml"


class ConfigError(Exception):
    pass


class EnvList(fields.List):
    """A list that may also come from the environment as JSON or comma-separated text."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> list[Any]:
        if isinstance(value, str):
            text = value.strip()
            value = (
                json.loads(text)
                if text.startswith("[")
                else [item.strip() for item in text.split(",") if item.strip()]
            )
        return super()._deserialize(value, attr, data, **kwargs)


class BaseConfig(Schema):
    """What every process needs. Services extend it with their own rules."""

    class Meta:
        unknown = EXCLUDE

    # The URI's path is the installation's own RabbitMQ virtual host (`make up` creates
    # `hcrm`): the broker's default vhost "/" may hold another installation's messages.
    amqp_uri = fields.String(load_default="amqp://guest:guest@127.0.0.1:5672/hcrm")
    # A RabbitMQ cluster: every node's host[:port] (k8s prod overlay: the three pods). amqp_uri
    # then becomes one URI per node, with its user, password and vhost, joined with ';':
    # kombu's failover list, which every consumer, publisher and RPC client walks when its
    # node goes away (README.md § RabbitMQ cluster). Empty: amqp_uri as it is (which may be
    # such a list already).
    amqp_hosts = EnvList(
        fields.String(
            validate=validate.Regexp(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$", error="host or host:port")
        ),
        load_default=list,
    )
    # A URI with a database path uses that database; one without gets hcrm_<service>.
    mongo_uri = fields.String(load_default="mongodb://127.0.0.1:27017")
    timezone = fields.String(load_default="Asia/Shanghai")
    log_level = fields.String(
        load_default="INFO", validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR"])
    )
    # 0 = no metrics listener (several test processes on one machine).
    metrics_port = fields.Integer(load_default=0, validate=validate.Range(min=0, max=65535))
    # This machine only unless configured: containers set HCRM_METRICS_HOST=0.0.0.0 (Dockerfile).
    metrics_host = fields.String(load_default="127.0.0.1")
    # "quorum" for production clusters (k8s prod overlay); "classic" locally.
    queue_type = fields.String(
        load_default="classic", validate=validate.OneOf(["classic", "quorum"])
    )
    max_workers = fields.Integer(load_default=10, validate=validate.Range(min=1, max=500))
    prefetch_count = fields.Integer(load_default=20, validate=validate.Range(min=1, max=5000))
    # Backoff for transient failures: one delay per attempt, then the dead-letter queue.
    retry_delays_ms = EnvList(
        fields.Integer(validate=validate.Range(min=10)), load_default=[1000, 5000, 15000, 60000]
    )
    # Retention of the hcrm.analytics stream, fixed at its first declaration (see topology).
    stream_max_age = fields.String(
        load_default="400D",
        validate=validate.Regexp(r"^[0-9]+[YMDhms]$", error="Like 400D, 12h or 1Y."),
    )
    stream_max_bytes = fields.Integer(load_default=20 * 1024**3, validate=validate.Range(min=1))
    outbox_relay_interval_s = fields.Float(load_default=2.0, validate=validate.Range(min=0.05))
    # Data protection (README.md § Data protection). How often each service's retention timer
    # runs: it strips what has outlived its period, a page at a time, and applies the
    # erasures of the last `erasure_sweep_days` again (an event about an erased person that
    # was already on its way is cleared too).
    retention_interval_s = fields.Float(load_default=3600.0, validate=validate.Range(min=0.05))
    erasure_sweep_days = fields.Float(load_default=7.0, validate=validate.Range(min=0))
    # Rejected and dead-lettered messages carry whole events (names, phones): the broker drops
    # each one this long after it was set aside (a per-message TTL, set when it is moved there).
    # 90 days: the DLQ alerts fire within minutes, and a quarter leaves room to investigate a
    # broken interface; after that the sending system resends what still matters.
    rejected_retention_days = fields.Float(
        load_default=90.0, validate=validate.Range(min=0.00001, max=3650)
    )
    rpc_timeout_s = fields.Float(load_default=5.0, validate=validate.Range(min=0.1, max=120))

    @validates("timezone")
    def _known_zone(self, value: str, **kwargs: Any) -> None:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValidationError(f"Unknown time zone {value!r}.") from None

    @validates("amqp_uri")
    def _amqp_scheme(self, value: str, **kwargs: Any) -> None:
        if not all(uri.startswith(("amqp://", "amqps://")) for uri in value.split(";")):
            raise ValidationError("Must start with amqp:// or amqps:// (each URI of a ';' list).")

    @post_load
    def _node_list(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if data.get("amqp_hosts"):
            data["amqp_uri"] = node_list(data["amqp_uri"].split(";")[0], data["amqp_hosts"])
        return data

    @validates("mongo_uri")
    def _mongo_scheme(self, value: str, **kwargs: Any) -> None:
        if not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValidationError("Must start with mongodb:// or mongodb+srv://.")


def node_list(amqp_uri: str, hosts: Iterable[str]) -> str:
    """`amqp_uri` once per host (its scheme, user, password, vhost and query kept), ';'-joined."""
    parts = urllib.parse.urlsplit(amqp_uri)
    credentials = parts.netloc.rpartition("@")[0]
    port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    uris = []
    for host in hosts:
        address = host if ":" in host else f"{host}:{port}"
        netloc = f"{credentials}@{address}" if credentials else address
        uris.append(urllib.parse.urlunsplit(parts._replace(netloc=netloc)))
    return ";".join(uris)


class WebhookNeedsUrl:
    """For a config with the pluggable notifier's fields (notifier, webhook_url, webhook_token,
    see shared/notifier.py): a webhook without its URL is refused at start."""

    @validates_schema
    def _webhook_needs_url(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if data.get("notifier") == "webhook" and not data.get("webhook_url"):
            raise ValidationError("notifier webhook needs webhook_url.", "webhook_url")


class KnownHolidayCountry:
    """For a config with a `holiday_country` (business days, holiday greetings): a country the
    `holidays` package has no calendar for is refused at start."""

    @validates_schema
    def _holiday_country_known(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        import holidays  # only the services with a calendar pay for loading it

        country = data.get("holiday_country", "CN")
        if country not in holidays.list_supported_countries():
            raise ValidationError(f"No holiday calendar for {country!r}.", "holiday_country")


def _secret_fields(schema: Schema) -> set[str]:
    return {name for name, field in schema.fields.items() if field.metadata.get("secret")}


def _read_yaml(path: str | pathlib.Path) -> dict[str, Any]:
    path = pathlib.Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(content, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    return content


def load_config(
    process: str,
    schema_cls: type[Schema],
    env: Mapping[str, str] | None = None,
    path: str | pathlib.Path | None = None,
) -> dict[str, Any]:
    """Merge and validate the configuration of `process` (e.g. "intake")."""
    env = os.environ if env is None else env
    schema = schema_cls()
    path = path or env.get("HCRM_CONFIG") or DEFAULT_CONFIG_FILE
    content = _read_yaml(path) if path else {}
    raw = {}
    for section in ("common", process):
        part = content.get(section) or {}
        if not isinstance(part, dict):
            raise ConfigError(f"{path}: section {section!r} must be a mapping")
        for key in _secret_fields(schema) & set(part):
            raise ConfigError(
                f"{section}.{key}: secrets come from the environment only, "
                f"set {process.upper()}_{key.upper()} or HCRM_{key.upper()}"
            )
        raw.update(part)
    for name in schema.fields:
        for env_name in (f"HCRM_{name.upper()}", f"{process.upper()}_{name.upper()}"):
            if env_name in env:
                raw[name] = env[env_name]
    try:
        config = schema.load(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{process}.{key}: {' '.join(msgs)}"
            for key, msgs in flatten_errors(exc.messages).items()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    config["process"] = process
    return config
