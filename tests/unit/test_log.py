"""Personal data never reaches a log unmasked."""

import io
import json
import logging
import sys

from shared.log import JsonFormatter, mask, mask_text


def test_phone_numbers_in_text_are_masked_but_ids_are_not():
    assert mask_text("call +86 138-0013-8000 today") == "call *********8000 today"
    assert mask_text("tel 13800138000.") == "tel *******8000."
    uuid_text = "event 9f1c2d34-1234-5678-9abc-0123456789ab"
    assert mask_text(uuid_text) == uuid_text
    assert mask_text("MRN-00012 visited 2026-03-02") == "MRN-00012 visited 2026-03-02"


def test_personal_keys_are_masked_wherever_they_are():
    masked = mask({"patient": {"name": "王小明", "phone": "138-0013-8000", "mrn": "M1"}})
    assert masked == {"patient": {"name": "王**", "phone": "*******8000", "mrn": "M1"}}


def test_the_json_formatter_masks_message_and_extra_fields():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    logger = logging.getLogger("test.masking")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("patient phoned from 13800138000", extra={"patient": {"name": "李娜"}})
    entry = json.loads(stream.getvalue())
    assert "13800138000" not in stream.getvalue() and "李娜" not in stream.getvalue()
    assert entry["message"] == "patient phoned from *******8000"
    assert entry["patient"] == {"name": "李*"}


def test_log_lines_go_to_a_rotated_file_when_hcrm_log_file_is_set(tmp_path):
    from shared.log import log_handler

    path = tmp_path / "intake.log"
    handler = log_handler(
        environ={"HCRM_LOG_FILE": str(path), "HCRM_LOG_MAX_MB": "0.001", "HCRM_LOG_BACKUPS": "2"}
    )
    try:
        handler.setFormatter(logging.Formatter("%(message)s"))
        for index in range(200):  # ~6 KB of lines against a 1 KB limit: rotates several times
            handler.emit(
                logging.LogRecord(
                    "t", logging.INFO, "", 0, f"line {index:03d} " + "x" * 20, (), None
                )
            )
    finally:
        handler.close()
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == ["intake.log", "intake.log.1", "intake.log.2"]  # no more than 2 backups
    assert all(p.stat().st_size <= 1100 for p in tmp_path.iterdir())
    assert "line 199" in path.read_text()


def test_without_hcrm_log_file_lines_go_to_stderr():
    from shared.log import log_handler

    handler = log_handler(environ={})
    assert type(handler) is logging.StreamHandler and handler.stream is sys.stderr


def test_a_log_size_that_is_not_a_number_is_refused_with_the_setting_named(tmp_path):
    import pytest

    from shared.log import log_handler

    with pytest.raises(ValueError, match="HCRM_LOG_MAX_MB must be a number"):
        log_handler(environ={"HCRM_LOG_FILE": str(tmp_path / "x.log"), "HCRM_LOG_MAX_MB": "big"})
