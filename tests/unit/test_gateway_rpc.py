"""The gateway's RPC pool (services/gateway/rpc.py) with fake clients: which outcomes keep a
client and which drop it, and what the caller gets (no broker here; tests/integration has
the real one)."""

import pytest
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService

from services.gateway import rpc
from shared.errors import NotFound


class FakeClient:
    made = 0

    def __init__(self, outcome):
        FakeClient.made += 1
        self.outcome = outcome
        self.closed = False

    def call(self, service, method, kwargs, context_data):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    def close(self):
        self.closed = True


def pool_answering(outcome):
    pool = rpc.RpcPool("amqp://unused", timeout_s=1.5, size=2)
    pool._new_client = lambda: FakeClient(outcome)
    FakeClient.made = 0
    return pool


def test_a_result_and_a_service_error_keep_the_client():
    pool = pool_answering({"patient_id": "p1"})
    assert pool.call("intake", "get_patient", patient_id="p1") == {"patient_id": "p1"}
    assert pool.call("intake", "get_patient", patient_id="p1") == {"patient_id": "p1"}
    assert FakeClient.made == 1
    for error in (NotFound("no patient p1"), RemoteError("ValueError", "boom")):
        pool = pool_answering(rpc._Answered(error))
        for _ in range(2):
            with pytest.raises(type(error)):
                pool.call("intake", "get_patient", patient_id="p1")
        assert FakeClient.made == 1  # a service's error says nothing against the connection


def test_a_service_that_never_started_is_named_and_the_client_kept():
    pool = pool_answering(UnknownService("intake"))
    for _ in range(2):
        with pytest.raises(rpc.ServiceUnavailable, match="not running"):
            pool.call("intake", "find_patients")
    assert FakeClient.made == 1


@pytest.mark.parametrize(
    "failure,reason",
    [
        (RpcTimeout(1.5), "no answer within 1.5s"),
        (ConnectionResetError("reset"), "broker unreachable"),
    ],
)
def test_a_timeout_or_a_broken_connection_drops_the_client(failure, reason):
    pool = pool_answering(failure)
    for _ in range(2):
        with pytest.raises(rpc.ServiceUnavailable, match=reason) as raised:
            pool.call("intake", "get_patient", patient_id="p1")
        assert raised.value.service == "intake"
    assert FakeClient.made == 2 and pool._created == 0  # a fresh client for every call
