"""Test support: real processes (NX-27017, services, gateway) on the real RabbitMQ.

Every run gets its own RabbitMQ virtual host and database names, so runs never collide and
leave nothing behind. Nothing sleeps and hopes: `wait_until` polls a condition against a
deadline and fails with a message saying what never happened.
"""

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

from kombu import Connection

from shared.messaging import publish

REPO = pathlib.Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = pathlib.Path(PYTHON).parent
JWT_SECRET = "test-secret-" + "x" * 32
ADMIN = ("admin", "admin-password-for-tests")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hospital_today():
    """Today in the hospital's time zone (read from the configuration the services read):
    the day they file an event under. With Asia/Shanghai, from 16:00 UTC it is tomorrow."""
    import datetime
    import zoneinfo

    from shared.config import BaseConfig, load_config

    zone = load_config("tests", BaseConfig)["timezone"]
    return datetime.datetime.now(zoneinfo.ZoneInfo(zone)).date()


def wait_until(predicate, timeout=30.0, interval=0.1, message="condition"):
    """Return the predicate's first truthy value; fail after `timeout` seconds. `message` may
    be a function, called at the failure (to say what was last seen)."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the thing may not be up yet
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for "
                f"{message() if callable(message) else message}"
                + (f" (last error: {last_error!r})" if last_error else "")
            )
        time.sleep(interval)


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def rabbitmqctl(*args):
    return subprocess.run(
        ["rabbitmqctl", *args], check=True, capture_output=True, text=True, timeout=60
    )


def ensure_rabbitmq():
    if port_open(5672):
        return
    if shutil.which("rabbitmq-server") is None:
        raise RuntimeError(
            "RabbitMQ is not running and not installed: run `make up` or "
            "`bash deploy/ensure-rabbitmq.sh` once"
        )
    subprocess.run(["rabbitmq-server", "-detached"], check=False)
    wait_until(lambda: port_open(5672), timeout=60, message="RabbitMQ on 127.0.0.1:5672")


class Process:
    """A child process with its output in a log file; stop() or kill() it."""

    def __init__(self, name, args, env, log_dir):
        self.name = name
        self.log_path = pathlib.Path(log_dir) / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self.log_file = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            args,
            env=env,
            cwd=REPO,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self):
        return self.popen.poll() is None

    def kill(self):
        """kill -9: no clean-up, no acks, no goodbye."""
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self, timeout=20):
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log_file.close()

    def output(self):
        return self.log_path.read_text(errors="replace")


class StoreServer:
    """An NX-27017 process (MongoDB wire protocol on SQLite) with its data in a temp folder.
    Set HCRM_TEST_MONGO_URI to use an existing MongoDB instead."""

    def __init__(self, log_dir):
        self.external = os.environ.get("HCRM_TEST_MONGO_URI")
        self.process = None
        if self.external:
            self.uri = self.external.rstrip("/")
            return
        self.data_dir = tempfile.mkdtemp(prefix="hcrm-nx-")
        self.port = free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.start()

    def start(self):
        # Its own pid and log files: NX-27017 refuses to start while its pid file names a
        # live process, and the default one is shared machine-wide.
        self.process = Process(
            "nx-27017",
            [
                str(BIN / "nx-27017"),
                "--data-dir",
                self.data_dir,
                "--host",
                "127.0.0.1",
                "-p",
                str(self.port),
                "--pid-file",
                f"{self.data_dir}/nx.pid",
                "--log-file",
                f"{self.data_dir}/nx.log",
            ],
            dict(os.environ),
            self.log_dir,
        )
        wait_until(lambda: port_open(self.port), timeout=30, message="NX-27017 to listen")

    def stop(self):
        if self.process:
            self.process.stop()

    def kill(self):
        if self.process:
            self.process.kill()

    def close(self):
        self.stop()
        if not self.external:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class Platform:
    """One isolated HCRM installation for a test: its own vhost and database names."""

    def __init__(self, store, log_dir, extra_env=None):
        self.run_id = uuid.uuid4().hex[:10]
        self.vhost = f"hcrm-test-{self.run_id}"
        rabbitmqctl("add_vhost", self.vhost)
        rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        self.amqp_uri = f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}"
        self.store = store
        self.log_dir = log_dir
        self.extra_env = dict(extra_env or {})
        self.processes = []
        self.gateway_url = None

    def database_uri(self, service):
        return f"{self.store.uri}/t{self.run_id}_{service}"

    def env(self, service, **overrides):
        env = dict(os.environ)
        env.update(
            {
                "HCRM_AMQP_URI": self.amqp_uri,
                f"{service.upper()}_MONGO_URI": self.database_uri(service),
                "HCRM_METRICS_PORT": "0",
                "HCRM_LOG_LEVEL": "INFO",
                "HCRM_RETRY_DELAYS_MS": "200,500,1000",
                "HCRM_OUTBOX_RELAY_INTERVAL_S": "0.5",
                "HCRM_JWT_SECRET": JWT_SECRET,
                "HCRM_ADMIN_USERNAME": ADMIN[0],
                "HCRM_ADMIN_PASSWORD": ADMIN[1],
                "PYTHONWARNINGS": "ignore",
            }
        )
        env.update(self.extra_env)
        env.update({k: str(v) for k, v in overrides.items()})
        return env

    # -- processes ------------------------------------------------------------------------
    def start_service(self, service, wait=True, **env):
        process = Process(
            service,
            [PYTHON, "-m", "shared.runner", service],
            self.env(service, **env),
            self.log_dir,
        )
        self.processes.append(process)
        if wait:
            wait_until(
                lambda: '"service started"' in process.output() or not process.alive(),
                timeout=60,
                message=f"{service} to start",
            )
            assert process.alive(), f"{service} died at start:\n{process.output()[-3000:]}"
        return process

    def start_hl7(self, wait=True, **env):
        """The HL7 listener, its MLLP port a free one (`self.hl7_port`, unless HL7_PORT given)."""
        self.hl7_port = int(env.pop("HL7_PORT", 0)) or free_port()
        return self.start_service("hl7", wait=wait, HL7_PORT=self.hl7_port, **env)

    def start_gateway(self, **env):
        """The gateway (2 gunicorn workers unless GATEWAY_WORKERS says otherwise); /readyz
        requires the services this test started (all if none)."""
        started = sorted({p.name for p in self.processes if p.name != "gateway"})
        if started:
            env.setdefault("GATEWAY_SERVICES", ",".join(started))
        env.setdefault("GATEWAY_WORKERS", 2)
        port = free_port()
        process = Process(
            "gateway",
            [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "services.gateway.wsgi:app"],
            self.env("gateway", GATEWAY_PORT=port, GATEWAY_HOST="127.0.0.1", **env),
            self.log_dir,
        )
        self.processes.append(process)
        self.gateway_url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: self.http("GET", "/healthz")[0] == 200 or not process.alive(),
            timeout=60,
            message="the gateway to answer /healthz",
        )
        assert process.alive(), f"gateway died at start:\n{process.output()[-3000:]}"
        return process

    def close(self):
        for process in self.processes:
            process.stop()
        try:
            rabbitmqctl("delete_vhost", self.vhost)
        except Exception:
            pass

    # -- broker ---------------------------------------------------------------------------
    def publish(self, event, routing_key=None, raw=None):
        """Publish like a hospital system does: to hospital.events, routing key = event_type."""
        body = raw if raw is not None else event
        key = routing_key or (event.get("event_type") if isinstance(event, dict) else None) or "x"
        publish(self.amqp_uri, "hospital.events", key, body)

    def drain(self, queue, limit=10_000):
        """Every message now in `queue` (acked), as (body bytes, headers)."""
        return [(body, headers) for body, headers, _ in self.drain_copies(queue, limit)]

    def drain_copies(self, queue, limit=10_000):
        """Every message now in `queue` (acked), as (body bytes, headers, message id)."""
        messages = []
        with Connection(self.amqp_uri) as connection:
            channel = connection.channel()
            while len(messages) < limit:
                message = channel.basic_get(queue, no_ack=True)
                if message is None:
                    break
                body = message.body
                messages.append(
                    (
                        body.encode() if isinstance(body, str) else body,
                        dict(message.headers or {}),
                        message.properties.get("message_id"),
                    )
                )
        return messages

    def witness(self, exchange, queue="witness"):
        """A queue that sees every event published to `exchange` (declared as the topology
        declares a service's: topic, durable), for `drain` to read back."""
        with Connection(self.amqp_uri) as connection:
            channel = connection.channel()
            channel.exchange_declare(exchange, "topic", durable=True, auto_delete=False)
            channel.queue_declare(queue, durable=True, auto_delete=False)
            channel.queue_bind(queue, exchange, "#")

    def queue_depth(self, queue):
        """Messages ready in `queue`: those delivered and not yet acked are not counted."""
        with Connection(self.amqp_uri) as connection:
            _, count, _ = connection.channel().queue_declare(queue, passive=True)
            return count

    def idle(self, *queues):
        """Whether every one of `queues` is empty, its consumers' unacked deliveries included
        (a batch consumer holds what it prefetched until its batch is written; queue_depth
        is 0 meanwhile)."""
        out = rabbitmqctl(
            "list_queues", "-p", self.vhost, "name", "messages", "--quiet", "--no-table-headers"
        ).stdout
        counts = dict(line.split("\t")[:2] for line in out.splitlines() if "\t" in line)
        return all(counts.get(queue) == "0" for queue in queues)

    def hcrm(self, *args, name="cli"):
        """`hcrm ARGS` against this installation (environment `self.env(name)`): its output;
        fails the test on a non-zero exit, with what it printed."""
        done = subprocess.run(
            [PYTHON, "-m", "shared.cli", *args],
            env=self.env(name),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    # -- HTTP -----------------------------------------------------------------------------
    def http(self, method, path, body=None, token=None, raw=None, headers=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(
            self.gateway_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json(exc.read())

    def token(self, username=ADMIN[0], password=ADMIN[1]):
        status, body = self.http(
            "POST", "/api/v1/auth/token", {"username": username, "password": password}
        )
        assert status == 200, body
        return body["access_token"]


def _json(data):
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")
