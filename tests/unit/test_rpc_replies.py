"""How a service sends an RPC reply (shared/messaging.py, RpcConsumer): nameko's message, sent
without a broker confirm through one kombu connection object per broker address; on kombu's
in-memory transport (no broker here)."""

from kombu import Connection, Exchange, Queue

from shared import messaging


class Request:
    """What the responder reads of the request it answers."""

    def __init__(self, reply_to, correlation_id):
        self.properties = {
            "content_type": "application/json",
            "reply_to": reply_to,
            "correlation_id": correlation_id,
        }


def test_a_reply_reaches_the_callers_queue_with_its_correlation_id():
    uri = "memory://replies"
    exchange = Exchange("nameko-rpc", type="topic", durable=True)
    with Connection(uri) as connection:
        reply_queue = Queue("rpc.reply-test", exchange=exchange, routing_key="caller-1")
        reply_queue(connection.default_channel).declare()
        responder = messaging._UnconfirmedResponder(
            uri, exchange, "json", Request("caller-1", "c-42")
        )
        assert responder.send_response({"patient_id": "p1"}, None) == ({"patient_id": "p1"}, None)
        message = reply_queue(connection.default_channel).get(accept=["json"])
        assert message.properties["correlation_id"] == "c-42"
        assert message.payload == {"result": {"patient_id": "p1"}, "error": None}


def test_one_connection_object_per_broker_address_and_no_confirms():
    first = messaging._ReplyPublisher("memory://a")
    assert messaging._ReplyPublisher("memory://a").connection is first.connection
    assert messaging._ReplyPublisher("memory://b").connection is not first.connection
    assert first.connection.transport_options["confirm_publish"] is False
