"""The quorum-queue settings test_cluster_faults.py runs with, checked without a broker: the
queue arguments of each kind of queue, the node list in the configuration and the logs, and
that the Kubernetes prod overlay carries the same settings."""

import re
import shutil
import subprocess

import pytest
import yaml

from shared import topology
from shared.config import BaseConfig, load_config
from shared.messaging import safe_uri
from tests.support import REPO

DELAYS = (200, 500)


def entities(queue_type):
    return {
        entity.name: entity
        for entity in topology.topology(queue_type, DELAYS, ["intake", "followup"])
    }


def arguments(entity):
    return dict(entity.queue_arguments or {})


def test_quorum_consumer_queues_dead_letter_to_their_dlq_after_20_deliveries():
    queue = entities("quorum")["intake.inbound"]
    assert arguments(queue) == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 20,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "intake.dlq",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def test_quorum_retry_queues_are_quorum_and_return_their_messages_at_least_once():
    queue = entities("quorum")["followup.inbound.retry.500ms"]
    assert arguments(queue) == {
        "x-queue-type": "quorum",
        "x-message-ttl": 500,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "followup.inbound",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def test_dead_letter_and_rejected_queues_have_no_delivery_limit():
    """`hcrm dlq show` peeks by taking messages and returning them: each peek is a delivery,
    and a limit would make a look at the DLQ drop what it holds."""
    found = entities("quorum")
    for name in ("intake.dlq", "followup.dlq", topology.REJECTED_QUEUE):
        assert arguments(found[name]) == {"x-queue-type": "quorum"}, name


def test_no_queue_asks_for_what_quorum_queues_lack():
    for entity in entities("quorum").values():
        if hasattr(entity, "queue_arguments"):
            assert "x-max-priority" not in arguments(entity), entity.name
            assert not getattr(entity, "exclusive", False) and not getattr(
                entity, "auto_delete", False
            )
    assert arguments(entities("quorum")[topology.ANALYTICS_STREAM])["x-queue-type"] == "stream"


def test_classic_installations_keep_the_arguments_they_were_declared_with():
    """A redeclare with other arguments fails (PRECONDITION_FAILED): one server's queues stay as
    they were."""
    found = entities("classic")
    assert arguments(found["intake.inbound"]) == {"x-queue-type": "classic"}
    assert arguments(found["intake.inbound.retry.200ms"]) == {
        "x-queue-type": "classic",
        "x-message-ttl": 200,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "intake.inbound",
    }
    assert topology.rpc_queue_arguments("classic") is None
    assert topology.rpc_queue_arguments("quorum") == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 20,
    }


def test_the_node_list_from_amqp_hosts_keeps_user_password_and_vhost():
    config = load_config(
        "intake",
        BaseConfig,
        env={
            "HCRM_AMQP_URI": "amqp://hcrm:s3cret@rabbitmq:5672/hcrm",
            "HCRM_AMQP_HOSTS": "rabbitmq-0.rabbitmq-headless:5672,rabbitmq-1.rabbitmq-headless,"
            "10.0.0.7:5673",
        },
    )
    assert config["amqp_uri"].split(";") == [
        "amqp://hcrm:s3cret@rabbitmq-0.rabbitmq-headless:5672/hcrm",
        "amqp://hcrm:s3cret@rabbitmq-1.rabbitmq-headless:5672/hcrm",
        "amqp://hcrm:s3cret@10.0.0.7:5673/hcrm",
    ]


def test_no_password_of_the_node_list_reaches_a_log():
    masked = safe_uri(
        "amqp://hcrm:one@a:5672/hcrm;amqp://hcrm:two@b:5672/hcrm;amqp://hcrm:three@c:5672/hcrm"
    )
    assert "one" not in masked and "two" not in masked and "three" not in masked
    assert masked.count("amqp://hcrm:**@") == 3


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed: cannot render k8s/"
)
def test_the_prod_overlay_runs_what_the_cluster_tests_prove():
    rendered = subprocess.run(
        ["kubectl", "kustomize", "k8s/overlays/prod"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=REPO,
    ).stdout
    resources = list(yaml.safe_load_all(rendered))
    env = next(
        r
        for r in resources
        if r["kind"] == "ConfigMap" and r["metadata"]["name"].startswith("hcrm-env-")
    )["data"]
    assert env["HCRM_QUEUE_TYPE"] == "quorum"
    assert env["HCRM_AMQP_HOSTS"].split(",") == [
        f"rabbitmq-{i}.rabbitmq-headless:5672" for i in range(3)
    ]
    rabbitmq = next(
        r for r in resources if r["kind"] == "StatefulSet" and r["metadata"]["name"] == "rabbitmq"
    )
    assert rabbitmq["spec"]["replicas"] == 3
    container = rabbitmq["spec"]["template"]["spec"]["containers"][0]
    pre_stop = " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    assert "await_online_quorum_plus_one" in pre_stop and "drain" in pre_stop
    assert pre_stop.index("await_online_quorum_plus_one") < pre_stop.index("drain")


def test_every_rpc_method_uses_the_one_rpc_entrypoint():
    """A service whose methods mix nameko's `rpc` with shared.messaging's gets two consumers on
    its one `rpc-<service>` queue, each knowing half the methods (and, on quorum, declaring it
    with other arguments): every RPC must come from shared.messaging. (Importing the protocol's
    constants from nameko.rpc, as the gateway's client does, is not an entrypoint.)"""
    entrypoint = re.compile(r"^\s*from nameko\.rpc import[^\n]*\brpc\b|nameko\.rpc\.rpc\b", re.M)
    offenders = [
        str(path.relative_to(REPO))
        for path in sorted(REPO.glob("services/**/*.py")) + sorted(REPO.glob("shared/*.py"))
        if entrypoint.search(path.read_text())
    ]
    assert offenders == []
