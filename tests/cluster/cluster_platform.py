"""tests.support.Platform on the three-node cluster: its vhost is created there, every process
connects through the node list (one amqp URI per node joined with ';', kombu's failover
alternates) and declares quorum queues, as in the Kubernetes prod overlay."""

import io
import json
import threading
import time
import uuid

from nameko.standalone.rpc import ClusterRpcProxy
from pymongo import MongoClient

from shared.stream import read as read_stream
from tests.support import Platform, hospital_today


class ClusterPlatform(Platform):
    def __init__(self, cluster, store, log_dir):
        # Platform.__init__ would create the vhost on the machine's own broker: not called.
        self.run_id = uuid.uuid4().hex[:10]
        self.vhost = f"hcrm-test-{self.run_id}"
        self.cluster = cluster
        cluster.add_vhost(self.vhost)
        self.amqp_uri = cluster.amqp_uri(self.vhost)
        self.store = store
        self.log_dir = log_dir
        # The services get the prod overlay's settings: one node's URI plus every node's
        # address (HCRM_AMQP_HOSTS), from which their config builds the failover list.
        first = cluster.nodes[0]
        self.extra_env = {
            "HCRM_QUEUE_TYPE": "quorum",
            "HCRM_AMQP_URI": f"{first.amqp_uri}/{self.vhost}",
            "HCRM_AMQP_HOSTS": ",".join(f"127.0.0.1:{node.port}" for node in cluster.nodes),
        }
        self.processes = []
        self.gateway_url = None
        self._db = {}

    def close(self):
        for process in self.processes:
            process.stop()
        self.cluster.delete_vhost(self.vhost)

    # -- the broker side ------------------------------------------------------------------
    def queues(self):
        return self.cluster.queues(self.vhost)

    def leader_of(self, queue):
        return self.queues()[queue]["leader"]

    # -- the ground truth -----------------------------------------------------------------
    def db(self, service):
        if service not in self._db:
            self._db[service] = MongoClient(
                self.database_uri(service), serverSelectionTimeoutMS=3000, socketTimeoutMS=30000
            ).get_default_database()
        return self._db[service]

    def visit_counts(self):
        """{mrn: visits} of every patient intake knows."""
        return {
            p["mrn"]: p["view"]["visit_count"]
            for p in self.db("intake").patients.find(
                {"mrn": {"$type": "string"}, "event_count": {"$gt": 0}}, {"mrn": 1, "view": 1}
            )
        }

    def visits_recorded(self):
        return sum(self.visit_counts().values())

    def post_visit_calls(self):
        return self.db("followup").tasks.count_documents({"kind": "post_visit_call"})

    def analytics_visits(self):
        with ClusterRpcProxy({"AMQP_URI": self.amqp_uri, "serializer": "json"}, timeout=10) as rpc:
            return rpc.analytics.summary(
                date_from="2026-03-01", date_to=hospital_today().isoformat()
            )["visits"]

    def stream_visits(self):
        """Distinct PatientVisited events on the hcrm.analytics stream (read from its start;
        the reader skips repeated publishes of one event_id, as the stream contract says)."""
        out = io.StringIO()
        read_stream(self.amqp_uri, "first", idle_s=2.0, out=out)
        return sum(
            1
            for line in out.getvalue().splitlines()
            if json.loads(line).get("event_type") == "PatientVisited"
        )


class Traffic:
    """A hospital system: publishes each message with a confirm, through the node list, and
    retries until the broker confirmed it (a publish that fails over may arrive twice: the
    consumers deduplicate). The test releases the messages phase by phase, so that events
    flow before, during and after each fault whatever its length."""

    def __init__(self, platform, messages, rate=40.0):
        self.platform = platform
        self.messages = messages
        self.rate = rate
        self.allowed = 0
        self.published = 0
        self.retries = 0
        self.error = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def release(self, count=None):
        """Let `count` more messages go (all that are left when None); returns how many are
        released in all."""
        with self._changed:
            left = len(self.messages) - self.allowed
            self.allowed += left if count is None else min(count, left)
            self._changed.notify_all()
            return self.allowed

    def _run(self):
        try:
            for index, event in enumerate(self.messages):
                with self._changed:
                    self._changed.wait_for(lambda: self.allowed > index)
                while True:
                    try:
                        self.platform.publish(event)
                        break
                    except Exception:  # the node it talked to died: fail over, send again
                        self.retries += 1
                        time.sleep(0.2)
                with self._changed:
                    self.published = index + 1
                    self._changed.notify_all()
                time.sleep(1.0 / self.rate)
        except BaseException as exc:  # pragma: no cover - reported by wait_published
            self.error = exc

    def wait_published(self, timeout=120):
        """Until every released message is confirmed."""
        with self._changed:
            done = self._changed.wait_for(
                lambda: self.published >= self.allowed or self.error, timeout=timeout
            )
        assert self.error is None, f"the publisher failed: {self.error!r}"
        assert done, f"only {self.published} of {self.allowed} messages confirmed in {timeout}s"
        return self.published

    def distinct_released(self):
        return len({m["event_id"] for m in self.messages[: self.allowed]})
