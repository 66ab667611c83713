"""A three-node RabbitMQ cluster for the session (tests/cluster/rabbit_cluster.py), torn down
at its end; each test gets its own vhost on it (ClusterPlatform). The machine's own broker
is not touched."""

import shutil

import pytest

from tests.cluster.cluster_platform import ClusterPlatform
from tests.cluster.rabbit_cluster import SBIN, RabbitCluster


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "cluster: runs against a three-node RabbitMQ cluster "
        "started by the test session (make test-cluster)",
    )


@pytest.fixture(scope="session")
def rabbit_cluster():
    if not (SBIN / "rabbitmq-server").exists() and shutil.which("rabbitmq-server") is None:
        pytest.fail(
            "RabbitMQ is not installed: `make broker` (deploy/ensure-rabbitmq.sh) installs it"
        )
    cluster = RabbitCluster(size=3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def cluster_platform(rabbit_cluster, store_server, log_dir):
    """An installation on the cluster: own vhost, own databases, quorum queues. A test starts
    with every node running and clustered, whatever the test before it did."""
    rabbit_cluster.make_whole()
    platform = ClusterPlatform(rabbit_cluster, store_server, log_dir)
    yield platform
    platform.close()
