"""One config loader for every process: defaults < YAML file < environment, validated.

Precedence, lowest first:
  1. the schema's defaults;
  2. the YAML file named by HCRM_CONFIG (default deploy/config/hcrm.yaml): its `common:`
     section, then the section named after the process (`intake:`, `gateway:`, ...);
  3. environment: HCRM_<FIELD> for every process, then <PROCESS>_<FIELD> for one process
     (INTAKE_MONGO_URI beats HCRM_MONGO_URI).
Secrets (fields with metadata secret=True) are taken from the environment only: a secret in
the YAML file is itself a configuration error. A bad value raises ConfigError naming the key,
and the runners turn that into a message and exit status 2.
"""
import json
import os
import pathlib
import zoneinfo

import yaml
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates

from shared.events import flatten_errors

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = REPO_ROOT / "deploy" / "config" / "hcrm.yaml"


class ConfigError(Exception):
    pass


class EnvList(fields.List):
    """A list that may also come from the environment as JSON or comma-separated text."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else [
                item.strip() for item in text.split(",") if item.strip()]
        return super()._deserialize(value, attr, data, **kwargs)


class BaseConfig(Schema):
    """What every process needs. Services extend it with their own rules."""

    class Meta:
        unknown = EXCLUDE

    amqp_uri = fields.String(load_default="amqp://guest:guest@127.0.0.1:5672/")
    # A URI with a database path uses that database; one without gets hcrm_<service>.
    mongo_uri = fields.String(load_default="mongodb://127.0.0.1:27017")
    timezone = fields.String(load_default="Asia/Shanghai")
    log_level = fields.String(
        load_default="INFO", validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR"]))
    # 0 = no metrics listener (several test processes on one machine).
    metrics_port = fields.Integer(load_default=0, validate=validate.Range(min=0, max=65535))
    # "quorum" for production clusters (k8s prod overlay); "classic" locally.
    queue_type = fields.String(load_default="classic", validate=validate.OneOf(["classic", "quorum"]))
    max_workers = fields.Integer(load_default=10, validate=validate.Range(min=1, max=500))
    prefetch_count = fields.Integer(load_default=20, validate=validate.Range(min=1, max=5000))
    # Backoff for transient failures: one delay per attempt, then the dead-letter queue.
    retry_delays_ms = EnvList(fields.Integer(validate=validate.Range(min=10)),
                              load_default=[1000, 5000, 15000, 60000])
    # Retention of the hcrm.analytics stream, fixed at its first declaration (see topology).
    stream_max_age = fields.String(load_default="400D",
                                   validate=validate.Regexp(r"^[0-9]+[YMDhms]$",
                                                            error="Like 400D, 12h or 1Y."))
    stream_max_bytes = fields.Integer(load_default=20 * 1024 ** 3, validate=validate.Range(min=1))
    outbox_relay_interval_s = fields.Float(load_default=2.0, validate=validate.Range(min=0.05))
    rpc_timeout_s = fields.Float(load_default=5.0, validate=validate.Range(min=0.1, max=120))

    @validates("timezone")
    def _known_zone(self, value, **kwargs):
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValidationError(f"Unknown time zone {value!r}.") from None

    @validates("amqp_uri")
    def _amqp_scheme(self, value, **kwargs):
        if not value.startswith(("amqp://", "amqps://")):
            raise ValidationError("Must start with amqp:// or amqps://.")

    @validates("mongo_uri")
    def _mongo_scheme(self, value, **kwargs):
        if not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValidationError("Must start with mongodb:// or mongodb+srv://.")


def _secret_fields(schema):
    return {name for name, field in schema.fields.items() if field.metadata.get("secret")}


def _read_yaml(path):
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


def load_config(process, schema_cls, env=None, path=None):
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
            raise ConfigError(f"{section}.{key}: secrets come from the environment only, "
                              f"set {process.upper()}_{key.upper()} or HCRM_{key.upper()}")
        raw.update(part)
    for name in schema.fields:
        for env_name in (f"HCRM_{name.upper()}", f"{process.upper()}_{name.upper()}"):
            if env_name in env:
                raw[name] = env[env_name]
    try:
        config = schema.load(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{process}.{key}: {' '.join(msgs)}"
                             for key, msgs in flatten_errors(exc.messages).items())
        raise ConfigError(f"invalid configuration: {problems}") from None
    config["process"] = process
    return config
