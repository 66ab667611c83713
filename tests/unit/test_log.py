"""Personal data never reaches a log unmasked."""
import io
import json
import logging

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
