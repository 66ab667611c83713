"""The local runner behind `make up` / `make down` / `make status`.

Everything runs on this machine, with state in .local/ (kept by `make down`):
  .local/data/mongo   NX-27017's databases (one SQLite file per service database)
  .local/log/*.log    each process's JSON logs (services': rotated at 50 MB, 5 kept; *.out
                      what a service printed outside logging)
  .local/run/*.pid    what `make down` stops
  .local/secrets.env  the generated JWT secret and bootstrap admin password (mode 600)
RabbitMQ itself is the machine's (deploy/ensure-rabbitmq.sh makes sure it runs); this
installation uses its own virtual host on it (`hcrm` unless amqp_uri names another), so
whatever else the broker holds never shows up here. `make clean` deletes both.
"""

import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence

from shared.topology import available_services

ROOT = pathlib.Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
RUN, LOG, DATA = LOCAL / "run", LOCAL / "log", LOCAL / "data" / "mongo"
SECRETS = LOCAL / "secrets.env"
BIN = pathlib.Path(sys.executable).parent
MONGO_PORT = int(os.environ.get("HCRM_LOCAL_MONGO_PORT", "27017"))
GATEWAY_PORT = int(os.environ.get("GATEWAY_PORT", "8080"))
HL7_PORT = int(os.environ.get("HL7_PORT", "2575"))  # the HL7 listener's MLLP port (services/hl7)
FIRST_METRICS_PORT = 9101
# `make down`: how long the processes get to drain after SIGTERM before SIGKILL (the
# services, then the store), so the whole stop stays under 10 s.
STOP_GRACE_S, STORE_GRACE_S = 6.0, 2.5


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(check: Callable[[], object], timeout: float, what: str) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    raise SystemExit(f"hcrm up: {what} did not happen within {timeout:g}s; see {LOG}/")


def local_secrets() -> dict[str, str]:
    if not SECRETS.exists():
        SECRETS.write_text(
            f"HCRM_JWT_SECRET={secrets.token_urlsafe(48)}\n"
            f"HCRM_ADMIN_USERNAME=admin\n"
            f"HCRM_ADMIN_PASSWORD={secrets.token_urlsafe(12)}\n"
        )
        SECRETS.chmod(0o600)
    return dict(line.split("=", 1) for line in SECRETS.read_text().split())


# -- the installation's own RabbitMQ virtual host ------------------------------------------
def amqp_uri() -> str:
    """The AMQP URI every local process reads
    (defaults < deploy/config/hcrm.yaml < HCRM_AMQP_URI)."""
    from shared.config import BaseConfig, load_config

    return load_config("local", BaseConfig)["amqp_uri"]


def vhost_of(uri: str) -> str:
    """The virtual host an AMQP URI names, read as kombu reads it: the path without its first
    slash, percent-decoded; the broker's default "/" when there is no path."""
    path = urllib.parse.urlsplit(uri).path
    return urllib.parse.unquote(path[1:]) if len(path) > 1 else "/"


def safe_uri(uri: str) -> str:
    """The URI without its password, to print."""
    from kombu.utils.url import maybe_sanitize_url

    return maybe_sanitize_url(uri)


def _broker_here(uri: str) -> bool:
    """rabbitmqctl manages this machine's node only: a remote broker is its operator's."""
    return (urllib.parse.urlsplit(uri).hostname or "localhost") in ("127.0.0.1", "localhost", "::1")


def _rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)


def ensure_vhost(uri: str) -> str:
    """Create the URI's virtual host and give its user every permission on it (idempotent).
    Returns a line saying what was done, for `make up`'s summary."""
    vhost, user = (
        vhost_of(uri),
        urllib.parse.unquote(urllib.parse.urlsplit(uri).username or "guest"),
    )
    if vhost == "/":
        return "the broker's default virtual host / (shared with whatever else uses this broker)"
    if not _broker_here(uri) or shutil.which("rabbitmqctl") is None:
        return f"virtual host {vhost} (not created here: the broker's operator creates it)"
    for args in (("add_vhost", vhost), ("set_permissions", "-p", vhost, user, ".*", ".*", ".*")):
        result = _rabbitmqctl(*args)
        if result.returncode and "already exists" not in result.stderr + result.stdout:
            raise SystemExit(
                f"hcrm up: `rabbitmqctl {' '.join(args)}` failed: "
                f"{(result.stderr or result.stdout).strip()}"
            )
    return f"virtual host {vhost} (this installation's own)"


def pid_of(name: str) -> int | None:
    path = RUN / f"{name}.pid"
    try:
        pid = int(path.read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None


def start(
    name: str, args: Sequence[str], env: Mapping[str, str], output: pathlib.Path | None = None
) -> None:
    """Start one process in its own session; what it prints goes to `output` (default
    .local/log/<name>.log)."""
    if pid_of(name):
        print(f"  {name:<13} already running (pid {pid_of(name)})")
        return
    # The process writes to its own copy of the file descriptor: ours closes after the start.
    with open(output or LOG / f"{name}.log", "ab") as log:
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (RUN / f"{name}.pid").write_text(str(process.pid))


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HCRM_MONGO_URI", f"mongodb://127.0.0.1:{MONGO_PORT}")
    env.setdefault("PYTHONWARNINGS", "ignore")
    env.update({k: v for k, v in local_secrets().items() if k not in os.environ})
    return env


def admin_login(environ: Mapping[str, str], generated: Mapping[str, str]) -> tuple[str, str, str]:
    """The bootstrap admin login as the gateway will have it, for `make up`'s summary: a
    HCRM_ADMIN_USERNAME / HCRM_ADMIN_PASSWORD in the environment (or GATEWAY_ADMIN_*, which
    beat them: shared/config.py) wins over the generated one in .local/secrets.env, as in
    base_env. Returns the username, where the password is, and a shell expression that reads
    it (for the curl example): the password itself is never printed."""

    def variable(key: str) -> str | None:
        return next((name for name in (f"GATEWAY_{key}", f"HCRM_{key}") if name in environ), None)

    user_variable, password_variable = variable("ADMIN_USERNAME"), variable("ADMIN_PASSWORD")
    username = environ[user_variable] if user_variable else generated["HCRM_ADMIN_USERNAME"]
    if password_variable:
        return username, f"${password_variable} (your environment)", f'"${password_variable}"'
    secrets_file = SECRETS.relative_to(ROOT)
    return username, str(secrets_file), f"$(grep PASSWORD {secrets_file} | cut -d= -f2)"


def up() -> int:
    for folder in (RUN, LOG, DATA):
        folder.mkdir(parents=True, exist_ok=True)
    env = base_env()
    services = available_services()
    print("HCRM: starting on this machine")
    uri = env.get("HCRM_AMQP_URI") or amqp_uri()
    vhost_line = ensure_vhost(uri)
    if subprocess.run([sys.executable, "-m", "shared.cli", "init"], env=env, cwd=ROOT).returncode:
        raise SystemExit("hcrm up: could not declare the RabbitMQ topology (is RabbitMQ up?)")

    if not pid_of("nx-27017") and port_open(MONGO_PORT):
        print(f"  store         something already listens on {MONGO_PORT}: using it as MongoDB")
    else:
        start(
            "nx-27017",
            [
                str(BIN / "nx-27017"),
                "--data-dir",
                str(DATA),
                "--host",
                "127.0.0.1",
                "-p",
                str(MONGO_PORT),
                "--pid-file",
                str(RUN / "nx-internal.pid"),
                "--log-file",
                str(LOG / "nx-27017-internal.log"),
            ],
            env,
        )
        wait_for(lambda: port_open(MONGO_PORT), 30, f"NX-27017 listening on {MONGO_PORT}")

    for offset, service in enumerate(services):
        service_env = dict(env)
        service_env.setdefault(f"{service.upper()}_METRICS_PORT", str(FIRST_METRICS_PORT + offset))
        # A service writes its JSON log lines itself, rotated (shared/log.py); what it prints
        # outside logging (a crash before logging is set up) goes to <service>.out.
        service_env.setdefault("HCRM_LOG_FILE", str(LOG / f"{service}.log"))
        start(
            service,
            [sys.executable, "-m", "shared.cli", "run", service],
            service_env,
            output=LOG / f"{service}.out",
        )
    start(
        "gateway",
        [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "services.gateway.wsgi:app"],
        dict(env, GATEWAY_PORT=str(GATEWAY_PORT)),
    )

    url = f"http://127.0.0.1:{GATEWAY_PORT}"
    wait_for(lambda: _status(url + "/readyz") == 200, 120, f"{url}/readyz answering 200")
    if "hl7" in services:
        wait_for(lambda: port_open(HL7_PORT), 30, f"the HL7 listener accepting on {HL7_PORT}")
    admin, password_at, password_shell = admin_login(os.environ, local_secrets())
    today, offset = _hospital_today()
    metrics_ports = f"{FIRST_METRICS_PORT}..{FIRST_METRICS_PORT + len(services) - 1}"
    # The curl commands are printed whole, to be copied (hence the noqa at the string's end).
    print(f"""
HCRM is up and ready ({url}/readyz = 200).

  gateway        {url}   (API under /api/v1, /healthz, /readyz, /metrics)
  services       {", ".join(services)}  (metrics on 127.0.0.1:{metrics_ports})
  store          NX-27017 on 127.0.0.1:{MONGO_PORT}, data in {DATA.relative_to(ROOT)}
  hl7 listener   MLLP on 127.0.0.1:{HL7_PORT} (`hcrm hl7 send FILE...`; or POST /api/v1/hl7)
  broker         {safe_uri(uri)}
                 {vhost_line}, exchange hospital.events
  logs           {LOG.relative_to(ROOT)}/<process>.log
  admin login    {admin} / password in {password_at}

Send a first event:
  TOKEN=$(curl -s -X POST {url}/api/v1/auth/token -H 'Content-Type: application/json' \\
    -d '{{"username":"{admin}","password":"'{password_shell}'"}}' \\
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s -X POST {url}/api/v1/events -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -d '{{"event_id":"first-1","event_type":"PatientVisited","occurred_at":"{today}T10:00:00{offset}","source":"his","data":{{"patient":{{"mrn":"M0001","name":"张伟","phone":"138-0000-0001"}},"visit_id":"V1","department":"心内科","visit_type":"first","visited_at":"{today}T09:30:00{offset}"}}}}'
  curl -s "{url}/api/v1/patients?mrn=M0001" -H "Authorization: Bearer $TOKEN"

Or see a working day: `make demo` builds a hospital's last three months, with today's calls
to make in the staff portal, {url}/portal/ (README.md, "The first hour").
Stop with `make down` (data is kept); `make clean` deletes the data and the virtual host.""")  # noqa: E501
    return 0


def _hospital_today() -> tuple[str, str]:
    """Today's date and UTC offset in the hospital's zone ("2026-03-02", "+08:00"), so the
    first event `make up` suggests is a visit of today."""
    import datetime
    import zoneinfo

    from shared.config import BaseConfig, load_config

    now = datetime.datetime.now(zoneinfo.ZoneInfo(load_config("local", BaseConfig)["timezone"]))
    offset = now.strftime("%z")
    return now.date().isoformat(), f"{offset[:3]}:{offset[3:]}"


def down(kept_note: str = "; data kept in .local/") -> int:
    """Stop what `make up` started: the gateway and every service at once (each drains on
    SIGTERM), then the store they wrote to. Whatever outlives its grace period is killed,
    so this returns within STOP_GRACE_S + STORE_GRACE_S; nothing is lost by a kill (an
    unacked message is redelivered, the outbox relays what was not published)."""
    started = time.monotonic()
    names = ["gateway", *reversed(available_services())]
    apps = {name: pid for name in names if (pid := pid_of(name))}
    store = {name: pid for name in ["nx-27017"] if (pid := pid_of(name))}
    killed = []
    if apps:
        print(
            f"stopping {', '.join(apps)} (up to {STOP_GRACE_S:g}s to finish their work)", flush=True
        )
        killed += _stop_all(apps, STOP_GRACE_S)
    if store:
        print("stopping nx-27017 (the store, once nothing writes to it)", flush=True)
        killed += _stop_all(store, STORE_GRACE_S)
    for name in [*names, "nx-27017"]:
        (RUN / f"{name}.pid").unlink(missing_ok=True)
    if apps or store:
        count = len(apps) + len(store)
        print(
            f"stopped {count} process{'es' if count > 1 else ''} "
            f"in {time.monotonic() - started:.1f}s"
            + (f" ({', '.join(killed)} killed after the grace period)" if killed else "")
            + kept_note
        )
    else:
        print("nothing was running" + kept_note)
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)  # start_new_session: the group holds gunicorn's workers too
    except (ProcessLookupError, PermissionError):
        pass


def _stop_all(pids: Mapping[str, int], grace_s: float) -> list[str]:
    """SIGTERM every process group at once, wait up to grace_s for all of them, SIGKILL the
    rest; returns the names that had to be killed."""
    for pid in pids.values():
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    alive = dict(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = {name: pid for name, pid in alive.items() if _alive(pid)}
    for pid in alive.values():
        _signal_group(pid, signal.SIGKILL)
    return list(alive)


def clean(yes: bool = False) -> int:
    """`make clean`: stop everything, then delete .local/ (databases, logs, the generated
    secrets) and this installation's virtual host, after asking unless `yes`."""
    uri = amqp_uri()
    vhost = vhost_of(uri)
    doomed, notes = [], []
    if LOCAL.exists():
        doomed.append(f"{LOCAL.relative_to(ROOT)}/ (databases, logs, the generated admin password)")
    drop_vhost = False
    if vhost == "/":
        notes.append("the broker's default virtual host / is shared with others: left as it is")
    elif not _broker_here(uri) or shutil.which("rabbitmqctl") is None:
        notes.append(
            f"virtual host {vhost} is on a broker this machine does not manage: left as it is"
        )
    else:
        listed = _rabbitmqctl("-q", "list_vhosts", "name")
        drop_vhost = vhost in listed.stdout.split()
        if drop_vhost:
            doomed.append(f"RabbitMQ virtual host {vhost} (its queues and every message in them)")
    if not doomed:
        down(kept_note="")
        print("nothing to delete" + "".join(f"; {note}" for note in notes))
        return 0
    print("This stops every local HCRM process and deletes:")
    for line in doomed + [f"({note})" for note in notes]:
        print(f"  {line}")
    if not yes:
        if not sys.stdin.isatty():
            print("not confirmed: run `make clean YES=1` or `hcrm clean --yes`", file=sys.stderr)
            return 1
        if input("Delete them? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    down(kept_note="")
    if LOCAL.exists():
        shutil.rmtree(LOCAL)
    if drop_vhost:
        result = _rabbitmqctl("delete_vhost", vhost)
        if result.returncode:
            print(
                f"hcrm clean: `rabbitmqctl delete_vhost {vhost}` failed: "
                f"{(result.stderr or result.stdout).strip()}",
                file=sys.stderr,
            )
            return 1
    print("deleted; `make up` starts a fresh installation")
    return 0


def status() -> int:
    for name in ["nx-27017", *available_services(), "gateway"]:
        pid = pid_of(name)
        print(f"  {name:<13} {'running, pid ' + str(pid) if pid else 'stopped'}")
    code = _status(f"http://127.0.0.1:{GATEWAY_PORT}/readyz")
    print(f"  readyz        {code or 'no answer'}")
    print(f"  broker        {safe_uri(amqp_uri())}")
    return 0


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    print(json.dumps({"usage": "python -m shared.cli up|down|status|clean [--yes]"}))
