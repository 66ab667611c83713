"""Issue 21, the first hour of a new user: an installation of its own (vhost, `make clean`),
safe and quiet defaults (127.0.0.1, no eventlet warning, `hcrm dlq show` limits), times in
ISO 8601, gateway messages that say what to do. No broker: rabbitmqctl is a stub here."""

import datetime
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from services.gateway import http, store
from services.gateway.config import GatewayConfig
from shared import cli, dlq
from shared import local_runner as local
from shared.config import BaseConfig, load_config
from shared.metrics import MetricsServer

SECRET_ENV = {"HCRM_JWT_SECRET": "s" * 40}


# -- an installation of its own ----------------------------------------------------------------
def test_the_local_installation_has_its_own_virtual_host_by_default():
    assert local.vhost_of(load_config("intake", BaseConfig, env={})["amqp_uri"]) == "hcrm"
    assert local.vhost_of(BaseConfig().load({})["amqp_uri"]) == "hcrm"  # without the YAML file too
    uri = load_config("intake", BaseConfig, env={"HCRM_AMQP_URI": "amqp://u:p@h:5672/ward-7"})[
        "amqp_uri"
    ]
    assert local.vhost_of(uri) == "ward-7"  # configurable


@pytest.mark.parametrize(
    "uri,vhost",
    [
        ("amqp://guest:guest@127.0.0.1:5672/hcrm", "hcrm"),
        ("amqp://guest:guest@127.0.0.1:5672/", "/"),
        ("amqp://guest:guest@127.0.0.1:5672", "/"),
        ("amqp://guest:guest@127.0.0.1:5672//", "/"),
        ("amqp://guest:guest@127.0.0.1:5672/%2F", "/"),
        ("amqps://u:p@rabbit.example.org/hospital%20a", "hospital a"),
    ],
)
def test_vhost_of_reads_the_uri_as_kombu_does(uri, vhost):
    from kombu import Connection

    assert local.vhost_of(uri) == vhost == Connection(uri).virtual_host


class Rabbitmqctl:
    """Records the calls; knows the vhosts it was told exist."""

    def __init__(self, vhosts=("/", "hcrm")):
        self.vhosts, self.calls = set(vhosts), []

    def __call__(self, *args):
        self.calls.append(args)
        if args[:2] == ("-q", "list_vhosts"):
            out = "\n".join(sorted(self.vhosts))
        else:
            out = ""
            if args[0] == "add_vhost":
                self.vhosts.add(args[1])
            elif args[0] == "delete_vhost":
                self.vhosts.discard(args[1])
        return subprocess.CompletedProcess(args, 0, out, "")


@pytest.fixture
def installation(tmp_path, monkeypatch):
    """The local runner pointed at a .local/ under tmp_path, rabbitmqctl stubbed."""
    root = tmp_path
    monkeypatch.setattr(local, "ROOT", root)
    monkeypatch.setattr(local, "LOCAL", root / ".local")
    monkeypatch.setattr(local, "RUN", root / ".local" / "run")
    (root / ".local" / "data").mkdir(parents=True)
    (root / ".local" / "data" / "patients.db").write_text("x")
    ctl = Rabbitmqctl()
    monkeypatch.setattr(local, "_rabbitmqctl", ctl)
    monkeypatch.setattr(local.shutil, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(local, "amqp_uri", lambda: "amqp://guest:guest@127.0.0.1:5672/hcrm")
    return root, ctl


def test_make_up_creates_the_vhost_and_gives_the_user_its_permissions():
    ctl = Rabbitmqctl(vhosts=("/",))
    original = local._rabbitmqctl
    local._rabbitmqctl = ctl
    try:
        line = local.ensure_vhost("amqp://guest:guest@127.0.0.1:5672/hcrm")
        again = local.ensure_vhost("amqp://guest:guest@127.0.0.1:5672/hcrm")  # idempotent
        remote = local.ensure_vhost("amqp://u:p@rabbit.example.org:5672/hcrm")
        default = local.ensure_vhost("amqp://guest:guest@127.0.0.1:5672/")
    finally:
        local._rabbitmqctl = original
    assert ctl.calls[:2] == [
        ("add_vhost", "hcrm"),
        ("set_permissions", "-p", "hcrm", "guest", ".*", ".*", ".*"),
    ]
    assert len(ctl.calls) == 4 and "hcrm" in line and line == again
    assert "operator" in remote and "shared" in default  # neither touched the broker


def test_clean_without_a_terminal_or_yes_deletes_nothing(installation, monkeypatch, capsys):
    root, ctl = installation
    monkeypatch.setattr(sys, "stdin", open(os.devnull))
    assert local.clean(yes=False) == 1
    assert (root / ".local" / "data" / "patients.db").exists() and "hcrm" in ctl.vhosts
    assert "YES=1" in capsys.readouterr().err


def test_clean_asks_and_a_no_keeps_everything(installation, monkeypatch):
    root, ctl = installation
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert local.clean(yes=False) == 1
    assert (root / ".local").exists() and "hcrm" in ctl.vhosts


def test_clean_yes_stops_everything_and_deletes_the_data_and_the_vhost(
    installation, monkeypatch, capsys
):
    root, ctl = installation
    stopped = []
    monkeypatch.setattr(local, "down", lambda kept_note: stopped.append(kept_note) or 0)
    assert local.clean(yes=True) == 0
    assert stopped and not (root / ".local").exists()
    assert ("delete_vhost", "hcrm") in ctl.calls and ctl.vhosts == {"/"}
    out = capsys.readouterr().out
    assert "virtual host hcrm" in out and ".local/" in out


def test_clean_never_deletes_the_brokers_default_vhost(installation, monkeypatch, capsys):
    _root, ctl = installation
    monkeypatch.setattr(local, "amqp_uri", lambda: "amqp://guest:guest@127.0.0.1:5672/")
    monkeypatch.setattr(local, "down", lambda kept_note: 0)
    assert local.clean(yes=True) == 0
    assert not any(call[0] == "delete_vhost" for call in ctl.calls) and "/" in ctl.vhosts
    assert "left as it is" in capsys.readouterr().out


def test_hcrm_clean_yes_reaches_the_runner(monkeypatch):
    seen = []
    monkeypatch.setattr(local, "clean", lambda yes: seen.append(yes) or 0)
    assert cli.main(["clean", "--yes"]) == 0 and cli.main(["clean"]) == 0
    assert seen == [True, False]


# -- make up's summary: the admin login in effect ------------------------------------------------
GENERATED = {
    "HCRM_JWT_SECRET": "j" * 64,
    "HCRM_ADMIN_USERNAME": "admin",
    "HCRM_ADMIN_PASSWORD": "generated-password-1",
}


def test_make_up_prints_the_generated_login_when_the_environment_sets_none():
    username, where, shell = local.admin_login({"PATH": "/usr/bin"}, GENERATED)
    assert username == "admin" and where == ".local/secrets.env"
    assert shell == "$(grep PASSWORD .local/secrets.env | cut -d= -f2)"


@pytest.mark.parametrize(
    "environ,username,variable",
    [
        (
            {"HCRM_ADMIN_USERNAME": "alice", "HCRM_ADMIN_PASSWORD": "alices-password"},
            "alice",
            "HCRM_ADMIN_PASSWORD",
        ),
        # GATEWAY_<KEY> beats HCRM_<KEY> for the gateway (shared/config.py), so for the login too.
        (
            {
                "HCRM_ADMIN_USERNAME": "alice",
                "GATEWAY_ADMIN_USERNAME": "bob",
                "HCRM_ADMIN_PASSWORD": "alices-password",
                "GATEWAY_ADMIN_PASSWORD": "bobs-password",
            },
            "bob",
            "GATEWAY_ADMIN_PASSWORD",
        ),
    ],
)
def test_make_up_prints_the_login_the_environment_sets(environ, username, variable, monkeypatch):
    # base_env gives the gateway the environment's values over .local/secrets.env: the
    # summary must name the same login, and point at the password without printing it.
    for key in ("HCRM", "GATEWAY"):
        for name in (f"{key}_ADMIN_USERNAME", f"{key}_ADMIN_PASSWORD"):
            monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(local, "local_secrets", lambda: dict(GENERATED))
    shown = local.admin_login(os.environ, GENERATED)
    assert shown[0] == username and variable in shown[1] and shown[2] == f'"${variable}"'
    printed = " ".join(shown)
    assert not any(
        password in printed
        for password in (
            GENERATED["HCRM_ADMIN_PASSWORD"],
            *(v for k, v in environ.items() if "PASSWORD" in k),
        )
    )
    gateway = load_config("gateway", GatewayConfig, env=local.base_env())
    assert gateway["admin_username"] == username and gateway["admin_password"] == environ[variable]


def test_only_the_username_may_come_from_the_environment():
    username, where, shell = local.admin_login({"HCRM_ADMIN_USERNAME": "alice"}, GENERATED)
    assert (username, where) == ("alice", ".local/secrets.env") and "grep PASSWORD" in shell


# -- make down: in parallel, within its grace -----------------------------------------------------
def _child(code):
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def test_stop_all_stops_every_process_at_once_and_kills_what_ignores_sigterm():
    polite = [_child("import time; time.sleep(60)") for _ in range(3)]
    stubborn = _child(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    time.sleep(0.3)  # let the stubborn one install its handler
    started = time.monotonic()
    pids = {f"p{i}": p.pid for i, p in enumerate(polite)} | {"stubborn": stubborn.pid}
    reaper = [*polite, stubborn]
    killed = []
    try:
        # Reap as we go (the parent here is the test): a zombie would still look alive.
        original_alive = local._alive
        local._alive = lambda pid: next(p for p in reaper if p.pid == pid).poll() is None
        killed = local._stop_all(pids, grace_s=1.5)
    finally:
        local._alive = original_alive
        for process in reaper:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    elapsed = time.monotonic() - started
    assert killed == ["stubborn"]
    assert elapsed < 3.0, elapsed  # one grace period for all, not one per process
    assert local.STOP_GRACE_S + local.STORE_GRACE_S < 10  # make down returns within 10 s


# -- safe, quiet defaults --------------------------------------------------------------------------
def test_local_processes_listen_on_this_machine_only_by_default():
    assert load_config("gateway", GatewayConfig, env=SECRET_ENV)["host"] == "127.0.0.1"
    assert GatewayConfig().load({"jwt_secret": "s" * 40})["host"] == "127.0.0.1"
    assert load_config("intake", BaseConfig, env={})["metrics_host"] == "127.0.0.1"
    # Configurable: the container image sets these.
    assert (
        load_config("gateway", GatewayConfig, env={**SECRET_ENV, "GATEWAY_HOST": "0.0.0.0"})["host"]
        == "0.0.0.0"
    )
    assert (
        load_config("intake", BaseConfig, env={"HCRM_METRICS_HOST": "0.0.0.0"})["metrics_host"]
        == "0.0.0.0"
    )


def test_the_metrics_listener_binds_the_configured_host(monkeypatch):
    calls = []
    monkeypatch.setattr(
        "shared.metrics.start_http_server", lambda port, addr: calls.append((port, addr))
    )

    class Container:
        config = {"HCRM": {"metrics_port": 9199, "metrics_host": "127.0.0.1"}}

    provider = MetricsServer()
    provider.container = Container()
    provider.setup()
    assert calls == [(9199, "127.0.0.1")]


def test_no_hcrm_command_prints_eventlets_deprecation_warning():
    # `hcrm run` imports eventlet (monkey-patching); `dlq --help` goes through the CLI's parser;
    # `status` through the local runner; the installed `hcrm` script as a user types it.
    commands = [
        [sys.executable, "-m", "shared.cli", *args]
        for args in (["run", "no-such-service"], ["dlq", "--help"], ["--help"], ["status"])
    ]
    commands.append([sys.executable, "-W", "default", "-m", "shared.cli", "--help"])
    script = os.path.join(os.path.dirname(sys.executable), "hcrm")
    if os.path.exists(script):
        commands += [[script, "--help"], [script, "status"]]
    for command in commands:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=60,
            env={
                k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "EVENTLET_TESTS")
            },
        )
        assert "Eventlet is deprecated" not in result.stderr + result.stdout, result.stderr
    result = subprocess.run(
        [sys.executable, "-c", "import shared, eventlet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "deprecated" not in result.stderr, result.stderr


def test_dlq_show_has_a_default_limit_and_cuts_long_values():
    args = cli_args(["dlq", "show", "intake.dlq"])
    assert args.limit is None and dlq.SHOW_LIMIT == 10 and dlq.REPLAY_LIMIT == 100
    assert cli_args(["dlq", "show", "intake.dlq", "--limit", "3"]).limit == 3
    entry = {
        "headers": {"x-hcrm-reason": "ValueError: " + "x" * 500},
        "body": {"data": {"patient": {"name": "王" + "*" * 999, "mrn": "M1"}}, "n": 3},
    }
    short = dlq.shorten(entry, 80)
    name = short["body"]["data"]["patient"]["name"]
    assert name.startswith("王" + "*" * 79) and name.endswith("… (+920 characters)")
    assert short["headers"]["x-hcrm-reason"].startswith("ValueError: x")
    assert short["body"]["data"]["patient"]["mrn"] == "M1" and short["body"]["n"] == 3
    assert dlq.shorten(entry, 0) == entry  # --width 0: whole values
    assert len(json.dumps(short, ensure_ascii=False)) < 400


def cli_args(argv):
    """What `hcrm` parsed, without running the command."""
    captured = {}

    class Stop(Exception):
        pass

    def fake_main(args):
        captured["args"] = args
        raise Stop

    original = dlq.main
    dlq.main = fake_main
    try:
        with pytest.raises(Stop):
            cli.main(argv)
    finally:
        dlq.main = original
    return captured["args"]


# -- times in ISO 8601, messages that say what to do -----------------------------------------------
def test_api_times_are_iso_8601_with_an_offset():
    aware = datetime.datetime(2026, 3, 2, 1, 30, tzinfo=datetime.UTC)
    body = json.loads(
        http.json_response(
            {"created_at": aware, "naive": datetime.datetime(2026, 3, 2, 1, 30)}
        ).get_data()
    )
    assert body == {"created_at": "2026-03-02T01:30:00+00:00", "naive": "2026-03-02T01:30:00+00:00"}
    # What a store may give back for a datetime set with $set: text with a space.
    assert store.iso_time("2026-03-02 01:30:00+00:00") == "2026-03-02T01:30:00+00:00"
    assert store.iso_time(aware) == "2026-03-02T01:30:00+00:00" and store.iso_time(None) is None
    record = {
        "_id": "k1",
        "name": "his",
        "role": "integration",
        "created_at": aware,
        "revoked_at": "2026-03-03 08:00:00.123456+00:00",
    }
    public = store._public_key(record)
    assert public["created_at"] == "2026-03-02T01:30:00+00:00"
    assert datetime.datetime.fromisoformat(public["revoked_at"]).tzinfo is not None
    assert "T" in public["revoked_at"]


def test_gateway_validation_messages_name_the_field_and_the_fix():
    from services.gateway.routes.complaints import ComplaintCreate

    context = http.Context(request=None, request_id="r1")
    with pytest.raises(http.ApiError) as caught:
        context.load(
            ComplaintCreate,
            {
                "channel": "phone",
                "category": "billing",
                "severity": "low",
                "received_at": "2026-03-02T09:30:00",
                "colour": "red",
            },
        )
    error = caught.value
    assert error.status == 400 and "description" in error.message and "received_at" in error.message
    assert error.details["description"] == ["Required: add this field."]
    assert "+08:00" in error.details["received_at"][0]
    assert error.details["colour"][0].startswith("Unknown field: remove it (accepted here:")
    assert "description" in error.details["colour"][0]
    assert not any(
        "docs/EVENTS.md" in m and "docs/EVENTS.md" not in m
        for messages in error.details.values()
        for m in messages
    )
