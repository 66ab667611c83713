"""The gateway's configuration: the shared settings plus HTTP, auth and limits."""

from marshmallow import fields, validate

from shared.config import BaseConfig, EnvList
from shared.topology import available_services


class GatewayConfig(BaseConfig):
    # This machine only unless configured: the image sets GATEWAY_HOST=0.0.0.0 (Dockerfile).
    host = fields.String(load_default="127.0.0.1")
    port = fields.Integer(load_default=8080, validate=validate.Range(min=1, max=65535))
    workers = fields.Integer(load_default=2, validate=validate.Range(min=1, max=64))
    threads = fields.Integer(load_default=8, validate=validate.Range(min=1, max=256))
    # Secrets: environment only (HCRM_JWT_SECRET, HCRM_ADMIN_USERNAME, HCRM_ADMIN_PASSWORD).
    jwt_secret = fields.String(
        required=True, validate=validate.Length(min=32), metadata={"secret": True}
    )
    admin_username = fields.String(
        load_default=None, validate=validate.Length(min=3, max=64), metadata={"secret": True}
    )
    admin_password = fields.String(
        load_default=None, validate=validate.Length(min=10), metadata={"secret": True}
    )
    token_ttl_s = fields.Integer(load_default=3600, validate=validate.Range(min=60, max=86400))
    # Services whose RPC answer /readyz requires; default: every service this install has.
    services = EnvList(fields.String(), load_default=available_services)
    max_body_bytes = fields.Integer(load_default=1024 * 1024, validate=validate.Range(min=1024))
    # Failed logins per username before it is throttled for login_lockout_s.
    login_max_failures = fields.Integer(load_default=5, validate=validate.Range(min=1))
    login_lockout_s = fields.Integer(load_default=300, validate=validate.Range(min=1))
    # Requests per minute per caller (user, integration key, or address before login), with a
    # burst; each gateway process counts on its own (ratelimit.py).
    rate_limit_per_minute = fields.Integer(load_default=600, validate=validate.Range(min=1))
    rate_limit_burst = fields.Integer(load_default=120, validate=validate.Range(min=1))
    # The public survey page (/survey/<token>): requests per minute per client address, with a
    # burst; far below the staff API's, since a patient answers once (routes/survey.py).
    survey_rate_limit_per_minute = fields.Integer(load_default=20, validate=validate.Range(min=1))
    survey_rate_limit_burst = fields.Integer(load_default=10, validate=validate.Range(min=1))
    # Metrics of the gunicorn workers are aggregated through this folder (multiprocess mode).
    prometheus_dir = fields.String(load_default=None)
    # Audit entries are deleted this long after the request (README.md § Data protection): 6
    # years, what HIPAA asks of such records (45 CFR 164.316), far above the 6 months China's
    # Cybersecurity Law (art. 21) sets for network logs; a patient may ask who used their record.
    audit_retention_days = fields.Float(load_default=2192, validate=validate.Range(min=0.00001))
