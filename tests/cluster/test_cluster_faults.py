"""The platform on a three-node RabbitMQ cluster with quorum queues (the Kubernetes prod
setting), under the faults a hospital group meets first: a node killed with -9, and a rolling
restart. Events flow from a publisher that uses confirms and fails over to another node, the
services connect through the node list, and each test asks for progress while a node is
down (failover, not just recovery after the restart), then for the exact ground truth:
M patients with their exact visit counts in intake, N post-visit calls in followup, N visits
in analytics and on the replicated stream, nothing left in a queue, a DLQ or the rejected
queue. A third test takes the retry and delivery-limit paths with the leaders' node down.
About 4 minutes in all, the cluster's boot (~30 s) included."""

import json
import random

import pytest
from kombu import Connection

from shared import topology
from shared.messaging import ATTEMPT_HEADER, ROUTING_KEY_HEADER, publish
from shared.topology import declare_topology
from tests import factories
from tests.cluster.cluster_platform import Traffic
from tests.support import wait_until

pytestmark = pytest.mark.cluster

SERVICES = ("intake", "followup", "analytics")
PATIENTS, VISITS_EACH = 40, 5
VISITS = PATIENTS * VISITS_EACH  # N distinct visits over M patients


def hospital_traffic(seed):
    """N distinct visits, each patient's on different days (one post-visit call each), with
    10% sent twice, shuffled."""
    rng = random.Random(seed)
    visits = [
        factories.visit(f"Q{seed}-{p:03d}", phone=f"139{seed:02d}{p:06d}", day=2 + k)
        for p in range(PATIENTS)
        for k in range(VISITS_EACH)
    ]
    messages = visits + rng.sample(visits, VISITS // 10)
    rng.shuffle(messages)
    expected = {f"Q{seed}-{p:03d}": VISITS_EACH for p in range(PATIENTS)}
    return messages, expected


def start_services(platform):
    for service in SERVICES:
        platform.start_service(service)
    queues = platform.queues()
    for name in (
        "intake.inbound",
        "followup.inbound",
        "analytics.inbound",
        "intake.dlq",
        topology.REJECTED_QUEUE,
        "rpc-intake",
        "rpc-analytics",
        topology.retry_queue("intake.inbound", 200),
    ):
        assert queues[name]["type"] == "quorum", (name, queues[name])
        assert len(queues[name]["members"]) == 3, (name, queues[name])
    assert queues[topology.ANALYTICS_STREAM]["type"] == "stream"
    assert len(queues[topology.ANALYTICS_STREAM]["members"]) == 3


def caught_up(platform, traffic):
    """Every released message confirmed, and intake and followup have handled all of it."""
    traffic.wait_published()
    distinct = traffic.distinct_released()
    wait_until(
        lambda: platform.visits_recorded() == distinct and platform.post_visit_calls() == distinct,
        timeout=120,
        interval=0.5,
        message=lambda: (
            f"{distinct} visits in intake and followup (now {platform.visits_recorded()} "
            f"and {platform.post_visit_calls()})"
        ),
    )


def assert_exact_ground_truth(platform, expected):
    wait_until(
        lambda: platform.visit_counts() == expected,
        timeout=120,
        interval=0.5,
        message="exact visit counts for every patient",
    )
    assert len(platform.visit_counts()) == PATIENTS
    wait_until(
        lambda: platform.post_visit_calls() == VISITS,
        timeout=60,
        message=f"{VISITS} post-visit calls",
    )
    wait_until(
        lambda: platform.analytics_visits() == VISITS,
        timeout=60,
        interval=1,
        message=f"{VISITS} visits in analytics",
    )
    wait_until(
        lambda: platform.stream_visits() == VISITS,
        timeout=60,
        interval=1,
        message=f"{VISITS} visits on the stream",
    )
    seen = {}

    def nothing_left():
        """Inbound, retry and dead-letter queues of the services and the rejected queue."""
        seen.update(
            {
                name: queue["messages"]
                for name, queue in platform.queues().items()
                if name.split(".")[0] in SERVICES or name == topology.REJECTED_QUEUE
            }
        )
        return seen and not any(seen.values())

    wait_until(nothing_left, timeout=30, message=lambda: f"empty queues: {seen}")
    # Nothing in flight any more: the figures are final, not a passing moment.
    assert platform.visit_counts() == expected and platform.post_visit_calls() == VISITS


def test_the_node_hosting_the_queue_leaders_killed_with_minus_9_then_restarted(cluster_platform):
    platform, cluster = cluster_platform, cluster_platform.cluster
    start_services(platform)
    # Leaders are placed on the node of the connection that declared the queue: the first of
    # every process's node list, so the victim is also the node everyone is connected to.
    victim = cluster.node_named(platform.leader_of("intake.inbound"))
    assert victim is cluster.nodes[0]
    messages, expected = hospital_traffic(seed=11)
    traffic = Traffic(platform, messages)

    traffic.release(len(messages) // 4)
    caught_up(platform, traffic)

    victim.kill()
    # While it is down: the leaders moved, and publisher, consumers, outbox relays and RPC
    # carry on through the two nodes left.
    traffic.release(len(messages) // 3)
    caught_up(platform, traffic)
    survivors = {node.name for node in cluster.running()}
    assert platform.leader_of("intake.inbound") in survivors
    wait_until(
        lambda: platform.analytics_visits() == traffic.distinct_released(),
        timeout=60,
        interval=1,
        message="analytics answering RPC with the visits so far",
    )

    victim.start(wait=False)
    traffic.release(len(messages) // 6)  # while it boots and rejoins
    victim.await_started()
    cluster.ctl("await_online_nodes", "3")
    traffic.release()
    caught_up(platform, traffic)
    assert_exact_ground_truth(platform, expected)
    everyone = {node.name for node in cluster.nodes}
    wait_until(
        lambda: all(
            set(platform.queues()[name]["online"]) == everyone
            for name in ("intake.inbound", "followup.inbound", "analytics.inbound")
        ),
        timeout=60,
        message="the restarted node back as a member of every quorum queue",
    )
    # Its leaders do not come back by themselves (README, Operations): the other two carry them
    # all until `rabbitmq-queues rebalance quorum` spreads them again, moving no message.
    assert victim.name not in cluster.leader_counts(platform.vhost)
    cluster.ctl("rebalance", "quorum", tool="rabbitmq-queues", timeout=120)
    wait_until(
        lambda: cluster.leader_counts(platform.vhost).get(victim.name, 0) > 0,
        timeout=60,
        message=lambda: f"leaders spread again: {cluster.leader_counts(platform.vhost)}",
    )
    assert_exact_ground_truth(platform, expected)


def test_a_rolling_restart_one_node_after_another(cluster_platform):
    platform, cluster = cluster_platform, cluster_platform.cluster
    start_services(platform)
    messages, expected = hospital_traffic(seed=12)
    traffic = Traffic(platform, messages)
    share = len(messages) // (2 * len(cluster.nodes) + 1)

    traffic.release(share)
    caught_up(platform, traffic)
    for node in cluster.nodes:
        # What the prod overlay's preStop hook does before the pod stops: wait until stopping
        # this node leaves every quorum queue a majority, then move its leaders away and
        # close its client connections (maintenance mode), then a graceful stop.
        node.ctl("-t", "120", "await_online_quorum_plus_one", tool="rabbitmq-upgrade", timeout=150)
        node.ctl("drain", tool="rabbitmq-upgrade", timeout=150)
        node.stop()
        traffic.release(share)
        caught_up(platform, traffic)  # with this node down
        node.start(wait=False)
        traffic.release(share)
        node.await_started()
        cluster.ctl("await_online_nodes", "3")
        # A node leaves maintenance mode by itself when it boots: no `revive` step needed.
        assert (
            cluster.ctl(
                "eval", f"rabbit_maintenance:is_being_drained_consistent_read('{node.name}')."
            ).strip()
            == "false"
        )
    traffic.release()
    caught_up(platform, traffic)
    assert_exact_ground_truth(platform, expected)


def test_the_retry_and_dead_letter_paths_work_with_the_leaders_node_down(cluster_platform):
    """What a consumer's settle relies on, on quorum queues with the node that hosted every
    leader killed (no service runs: the broker's own behaviour): a publish to a DLQ right after
    the kill, nacked until the queue's new leader is elected, is sent again until it is taken;
    a failed handler's message goes to a retry queue and comes back after its delay; a message
    that keeps coming back unsettled ends in the DLQ after the delivery limit."""
    platform, cluster = cluster_platform, cluster_platform.cluster
    config = {
        "amqp_uri": platform.amqp_uri,
        "queue_type": "quorum",
        "retry_delays_ms": [200, 500],
        "stream_max_age": "1D",
        "stream_max_bytes": 10**8,
    }
    declare_topology(config, services=["intake"])
    retry_queue = topology.retry_queue("intake.inbound", 200)
    victim = cluster.node_named(platform.leader_of(retry_queue))
    victim.kill()
    publish(platform.amqp_uri, "", "intake.dlq", {"event_id": "e-0"}, headers={ATTEMPT_HEADER: 5})

    # Once the queues have their new leaders. (A retry whose delay runs out during the
    # election of the queue it returns to is dead-lettered again only after the broker's
    # confirm timeout, 3 minutes: at least once, but late.)
    survivors = {node.name for node in cluster.running()}
    wait_until(
        lambda: (
            {platform.leader_of("intake.inbound"), platform.leader_of(retry_queue)} <= survivors
        ),
        timeout=30,
        message="new leaders on the nodes left",
    )
    publish(
        platform.amqp_uri,
        "",
        retry_queue,
        {"event_id": "e-1"},
        headers={ATTEMPT_HEADER: 1, ROUTING_KEY_HEADER: "PatientVisited"},
    )
    wait_until(
        lambda: platform.queue_depth("intake.inbound") == 1,
        timeout=30,
        message="the message back in intake.inbound after its retry delay",
    )

    deliveries, headers = 0, {}
    with Connection(platform.amqp_uri) as connection:
        channel = connection.channel()
        while True:  # a consumer that dies holding it, again and again
            message = channel.basic_get("intake.inbound", no_ack=False)
            if message is None:
                break
            deliveries += 1
            headers = dict(message.headers or {})
            channel.basic_reject(message.delivery_tag, requeue=True)
    assert deliveries == topology.QUORUM_DELIVERY_LIMIT + 1
    assert headers[ATTEMPT_HEADER] == 1 and headers[ROUTING_KEY_HEADER] == "PatientVisited"
    dead = []
    wait_until(
        lambda: dead.extend(platform.drain("intake.dlq")) or len(dead) >= 2,
        timeout=30,
        message=lambda: f"two messages in intake.dlq, not {dead}",
    )
    assert [json.loads(body) for body, _ in dead] == [{"event_id": "e-0"}, {"event_id": "e-1"}]
    last_death = dead[1][1]["x-death"][
        0
    ]  # the newest first; before it, the retry queue's "expired"
    assert (last_death["reason"], last_death["queue"]) == ("delivery_limit", "intake.inbound"), (
        dead[1][1]
    )
    assert platform.queue_depth("intake.inbound") == 0
