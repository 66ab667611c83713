"""The webhook notifier against a real HTTP server on loopback (an SMS gateway stand-in)."""

import http.server
import json
import threading
import urllib.error

import pytest

from services.appointments.notifier import WebhookNotifier


@pytest.fixture
def sms_gateway():
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), json.loads(body)))
            self.send_response(202 if self.path == "/sms" else 500)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()


def test_the_reminder_is_posted_with_an_idempotency_key(sms_gateway):
    url, received = sms_gateway
    notification = {
        "_id": "reminder:A1",
        "phone": "13800138000",
        "text": "王芳您好，提醒您明天就诊",
        "kind": "sms",
    }
    WebhookNotifier(url + "/sms", token="t0ken").send(notification)
    headers, body = received[0]
    assert body == notification
    assert (
        headers["Idempotency-Key"] == "reminder:A1" and headers["Authorization"] == "Bearer t0ken"
    )


def test_a_failing_gateway_is_an_error(sms_gateway):
    url, _ = sms_gateway
    with pytest.raises(urllib.error.HTTPError):  # the gateway's 500
        WebhookNotifier(url + "/broken").send({"_id": "reminder:A2", "text": "x"})
