"""JSON logs with personal data masked.

Named log.py, not logging.py, so that it never shadows the standard library module.
Privacy rule (docs/DOMAIN.md): names and phone numbers never reach a log unmasked. Two layers:
values under personal keys (name, phone, ...) are masked wherever they appear in the
structured fields, and any run of 7+ digits in free text is masked as a phone number.
"""

import datetime
import json
import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Mapping
from typing import IO, Any

from shared import tracing

PERSONAL_NAME_KEYS = {"name", "patient_name", "doctor_name", "full_name", "username_display"}
PERSONAL_PHONE_KEYS = {"phone", "phone_digits", "mobile", "telephone"}
# A whole token of 7+ digits (spaces and dashes allowed inside), not part of an id or a
# UUID: the lookarounds refuse a neighbouring letter, digit, dash or underscore.
PHONE_IN_TEXT = re.compile(r"(?<![\w\-+])\+?\d(?:[ \-]?\d){6,}(?![\w\-])")
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def mask_phone(phone: object) -> str:
    digits = re.sub(r"\D", "", str(phone))
    if len(digits) <= 4:
        return "*" * len(digits)
    return "*" * (len(digits) - 4) + digits[-4:]


def mask_name(name: object) -> str:
    text = str(name)
    return text[:1] + "*" * max(len(text) - 1, 1) if text else text


DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def mask_text(text: str) -> str:
    return PHONE_IN_TEXT.sub(
        lambda m: m.group(0) if DATE.fullmatch(m.group(0)) else mask_phone(m.group(0)), text
    )


def mask(value: Any, key: str | None = None) -> Any:
    """Return `value` with personal data masked, recursing through dicts and lists."""
    if isinstance(value, dict):
        return {k: mask(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    lowered = (key or "").lower()
    if lowered in PERSONAL_NAME_KEYS:
        return mask_name(value)
    if lowered in PERSONAL_PHONE_KEYS:
        return mask_phone(value)
    if isinstance(value, str):
        return mask_text(value)
    return value


class JsonFormatter(logging.Formatter):
    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "process": self.process_name,
            "logger": record.name,
            "message": mask_text(record.getMessage()),
        }
        # The trace(s) of the work this line belongs to (shared/tracing.py); a line that
        # names its own trace_id (one message of a batch) keeps it.
        if "trace_id" not in vars(record):
            trace_ids = tracing.current_trace_ids()
            if len(trace_ids) == 1:
                entry["trace_id"] = trace_ids[0]
            elif trace_ids:
                entry["trace_ids"] = trace_ids
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = mask(value, key)
        if record.exc_info:
            entry["exception"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


# HCRM_LOG_FILE: write the JSON lines to this file instead of stderr, rotated when it reaches
# HCRM_LOG_MAX_MB (default 50) with HCRM_LOG_BACKUPS (default 5) older files kept. `make up`
# sets it for each process: at ~2.4 KB per event across the services, unrotated logs would
# take tens of GB a month (bench/RESULTS.md, the soak). Containers log to stderr (unset): the
# container runtime rotates.
LOG_FILE_ENV, LOG_MAX_MB_ENV, LOG_BACKUPS_ENV = (
    "HCRM_LOG_FILE",
    "HCRM_LOG_MAX_MB",
    "HCRM_LOG_BACKUPS",
)


def log_handler(
    stream: IO[str] | None = None, environ: Mapping[str, str] = os.environ
) -> logging.Handler:
    """stderr (or `stream`), or the rotating file named by HCRM_LOG_FILE."""
    path = environ.get(LOG_FILE_ENV)
    if stream is not None or not path:
        return logging.StreamHandler(stream or sys.stderr)
    try:
        max_mb = float(environ.get(LOG_MAX_MB_ENV) or 50)
        backups = int(environ.get(LOG_BACKUPS_ENV) or 5)
    except ValueError:
        raise ValueError(
            f"{LOG_MAX_MB_ENV} must be a number of megabytes and {LOG_BACKUPS_ENV} a whole "
            f"number of files, not {environ.get(LOG_MAX_MB_ENV)!r} / "
            f"{environ.get(LOG_BACKUPS_ENV)!r}"
        ) from None
    return logging.handlers.RotatingFileHandler(
        path, maxBytes=int(max_mb * 1024**2), backupCount=backups, encoding="utf-8"
    )


def setup_logging(process_name: str, level: str = "INFO", stream: IO[str] | None = None) -> None:
    handler = log_handler(stream)
    handler.setFormatter(JsonFormatter(process_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kombu and nameko log message bodies at DEBUG; keep them out of production logs.
    for noisy in ("kombu", "amqp", "nameko", "pymongo"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLevelName(level)))
