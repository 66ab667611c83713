"""The message id of a set-aside copy (shared.messaging.copy_id): how a repeat is recognised."""

from shared.messaging import copy_id


def test_the_same_body_from_the_same_queue_has_the_same_id_as_bytes_or_text():
    assert copy_id("intake.inbound", b'{"a": 1}') == copy_id("intake.inbound", '{"a": 1}')


def test_another_body_or_another_queue_has_another_id():
    ids = {
        copy_id("intake.inbound", b'{"a": 1}'),
        copy_id("intake.inbound", b'{"a": 2}'),
        copy_id("followup.inbound", b'{"a": 1}'),
    }
    assert len(ids) == 3


def test_a_body_that_is_not_text_has_an_id():
    assert len(copy_id("intake.inbound", b"\xff\xfe{")) == 32
