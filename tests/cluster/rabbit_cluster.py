"""A three-node RabbitMQ cluster on this machine, for the cluster fault tests.

The machine's own broker (rabbit@localhost on 127.0.0.1:5672) is never touched: these nodes
have their own names (hcrm-c<run>-N@localhost), AMQP and distribution ports, data and log
directories under one temp folder, an empty plugin list and one Erlang cookie of their own
(RabbitMQ's "several nodes on one host": https://www.rabbitmq.com/clustering.html). Every
command names its node and passes the cookie, so nothing reads the machine's
/etc/rabbitmq/rabbitmq-env.conf or /var/lib/rabbitmq/.erlang.cookie.
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

from tests.support import free_port, port_open, wait_until

SBIN = pathlib.Path(
    "/usr/lib/rabbitmq/bin"
)  # the scripts themselves: /usr/sbin's wrappers su to rabbitmq


def _tool(name):
    path = SBIN / name
    return str(path) if path.exists() else (shutil.which(name) or name)


class Node:
    """One rabbitmq-server process; start() / kill() (-9) / stop() (graceful) as often as asked,
    its data directory kept in between like a pod's volume."""

    def __init__(self, cluster, index):
        self.cluster = cluster
        self.index = index
        self.name = f"hcrm-c{cluster.run_id}-{index}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.dir = cluster.base / f"n{index}"
        (self.dir / "log").mkdir(parents=True)
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "log.console = false\nlog.file.level = info\n"
        )
        self.process = None
        self.output = None

    @property
    def amqp_uri(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}"

    def env(self):
        env = dict(os.environ)
        env.update(
            {
                "HOME": str(self.cluster.base),
                "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_BASE": str(self.dir),
                "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.dir / "log"),
                "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.cluster.base / "enabled_plugins"),
                "RABBITMQ_CONF_ENV_FILE": str(self.cluster.base / "rabbitmq-env.conf"),
                "ERL_EPMD_ADDRESS": "127.0.0.1",
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": f"-setcookie {self.cluster.cookie} "
                "-kernel inet_dist_use_interface {127,0,0,1}",
            }
        )
        return env

    def start(self, wait=True):
        assert not self.alive(), f"{self.name} runs already"
        self.output = open(self.dir / "server.out", "ab")
        # If the test session itself is killed (no fixture teardown), the script gets SIGTERM
        # and stops its node: no broker outlives the session.
        guard = ["setpriv", "--pdeathsig", "TERM", "--"] if shutil.which("setpriv") else []
        self.process = subprocess.Popen(
            [*guard, _tool("rabbitmq-server")],
            env=self.env(),
            cwd=self.dir,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            self.await_started()

    def await_started(self, timeout=120):
        wait_until(
            lambda: port_open(self.port) or not self.alive(),
            timeout=timeout,
            interval=0.3,
            message=f"{self.name} to listen on {self.port}",
        )
        assert self.alive(), f"{self.name} died at start:\n{self.log_tail()}"
        self.ctl("await_startup", timeout=timeout)

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def kill(self):
        """kill -9 of the whole process group (the Erlang VM and its port programs)."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)
        self._close_output()

    def stop(self, timeout=120):
        """A graceful stop: `rabbitmqctl shutdown` (what a pod's SIGTERM does)."""
        if self.alive():
            self.ctl("shutdown", timeout=timeout)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_output()

    def _close_output(self):
        if self.output is not None:
            self.output.close()
            self.output = None

    def ctl(self, *args, tool="rabbitmqctl", timeout=60, check=True):
        """A CLI tool (rabbitmqctl, rabbitmq-queues, rabbitmq-upgrade) against this node."""
        command = [_tool(tool), "-n", self.name, "--erlang-cookie", self.cluster.cookie, *args]
        if args and args[0] in ("await_startup", "shutdown"):
            command[5:5] = ["--timeout", str(int(timeout))]
        result = subprocess.run(
            command,
            env=self.cluster.cli_env(),
            capture_output=True,
            text=True,
            timeout=timeout + 30,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command[:1] + list(args))} on {self.name} failed "
                f"({result.returncode}): {result.stdout[-2000:]} {result.stderr[-2000:]}"
            )
        return result.stdout

    def log_tail(self, size=3000):
        logs = sorted((self.dir / "log").glob("*.log")) + [self.dir / "server.out"]
        return "\n".join(p.read_text(errors="replace")[-size:] for p in logs if p.exists())


class RabbitCluster:
    """Three nodes joined into one cluster; `amqp_uri(vhost)` is the node list clients use."""

    def __init__(self, size=3):
        self.run_id = uuid.uuid4().hex[:6]
        self.base = pathlib.Path(tempfile.mkdtemp(prefix="hcrm-rmq-cluster-"))
        self.cookie = "HCRMCLUSTER" + uuid.uuid4().hex.upper()
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq-env.conf").write_text("")
        self.nodes = [Node(self, index) for index in range(1, size + 1)]

    def cli_env(self):
        return {
            **os.environ,
            "HOME": str(self.base),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
        }

    def start(self):
        started = time.monotonic()
        for node in self.nodes:  # the VMs boot in parallel, then join one by one
            node.start(wait=False)
        for node in self.nodes:
            node.await_started()
        seed = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", seed.name)
            node.ctl("start_app")
        seed.ctl("await_online_nodes", str(len(self.nodes)))
        self.boot_seconds = time.monotonic() - started
        return self

    def close(self):
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.base, ignore_errors=True)

    def make_whole(self):
        """Every node running and in the cluster (after a test that left one down)."""
        stopped = [node for node in self.nodes if not node.alive()]
        for node in stopped:
            node.start(wait=False)
        for node in stopped:
            node.await_started()
        self.ctl("await_online_nodes", str(len(self.nodes)))

    # -- what clients see -----------------------------------------------------------------
    def amqp_uri(self, vhost, nodes=None):
        """The failover list: one URI per node joined with ';' (kombu's alternates)."""
        return ";".join(f"{node.amqp_uri}/{vhost}" for node in (nodes or self.nodes))

    def running(self):
        return [node for node in self.nodes if node.alive()]

    def node_named(self, name):
        return next(node for node in self.nodes if node.name == name)

    def ctl(self, *args, **kwargs):
        """A command against any running node."""
        return self.running()[0].ctl(*args, **kwargs)

    def add_vhost(self, vhost):
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")

    def delete_vhost(self, vhost):
        self.ctl("delete_vhost", vhost, check=False)

    def queues(self, vhost):
        """{queue name: {type, leader, messages, members, online}} of every queue in vhost."""
        out = self.ctl(
            "list_queues",
            "-p",
            vhost,
            "--formatter",
            "json",
            "name",
            "type",
            "leader",
            "messages",
            "members",
            "online",
            "arguments",
        )
        return {q["name"]: q for q in json.loads(out)}

    def leader_counts(self, vhost):
        counts = {}
        for queue in self.queues(vhost).values():
            if queue["type"] == "quorum" and queue.get("leader"):
                counts[queue["leader"]] = counts.get(queue["leader"], 0) + 1
        return counts
