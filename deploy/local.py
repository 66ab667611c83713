"""The local runner behind `make up` / `make down` / `make status`.

Everything runs on this machine, with state in .local/ (kept by `make down`):
  .local/data/mongo   NX-27017's databases (one SQLite file per service database)
  .local/log/*.log    each process's output (JSON logs)
  .local/run/*.pid    what `make down` stops
  .local/secrets.env  the generated JWT secret and bootstrap admin password (mode 600)
RabbitMQ itself is the machine's (deploy/ensure-rabbitmq.sh makes sure it runs).
"""
import json
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from shared.topology import available_services

ROOT = pathlib.Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
RUN, LOG, DATA = LOCAL / "run", LOCAL / "log", LOCAL / "data" / "mongo"
SECRETS = LOCAL / "secrets.env"
BIN = pathlib.Path(sys.executable).parent
MONGO_PORT = int(os.environ.get("HCRM_LOCAL_MONGO_PORT", "27017"))
GATEWAY_PORT = int(os.environ.get("GATEWAY_PORT", "8080"))
FIRST_METRICS_PORT = 9101


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    raise SystemExit(f"hcrm up: {what} did not happen within {timeout:g}s; see {LOG}/")


def local_secrets():
    if not SECRETS.exists():
        SECRETS.write_text(f"HCRM_JWT_SECRET={secrets.token_urlsafe(48)}\n"
                           f"HCRM_ADMIN_USERNAME=admin\n"
                           f"HCRM_ADMIN_PASSWORD={secrets.token_urlsafe(12)}\n")
        SECRETS.chmod(0o600)
    return dict(line.split("=", 1) for line in SECRETS.read_text().split())


def pid_of(name):
    path = RUN / f"{name}.pid"
    try:
        pid = int(path.read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None


def start(name, args, env):
    if pid_of(name):
        print(f"  {name:<13} already running (pid {pid_of(name)})")
        return
    log = open(LOG / f"{name}.log", "ab")
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    (RUN / f"{name}.pid").write_text(str(process.pid))


def base_env():
    env = dict(os.environ)
    env.setdefault("HCRM_MONGO_URI", f"mongodb://127.0.0.1:{MONGO_PORT}")
    env.setdefault("PYTHONWARNINGS", "ignore")
    env.update({k: v for k, v in local_secrets().items() if k not in os.environ})
    return env


def up():
    for folder in (RUN, LOG, DATA):
        folder.mkdir(parents=True, exist_ok=True)
    env = base_env()
    services = available_services()
    print("HCRM: starting on this machine")
    if subprocess.run([sys.executable, "-m", "shared.cli", "init"], env=env, cwd=ROOT).returncode:
        raise SystemExit("hcrm up: could not declare the RabbitMQ topology (is RabbitMQ up?)")

    if not pid_of("nx-27017") and port_open(MONGO_PORT):
        print(f"  store         something already listens on {MONGO_PORT}: using it as MongoDB")
    else:
        start("nx-27017", [str(BIN / "nx-27017"), "--data-dir", str(DATA), "--host", "127.0.0.1",
                           "-p", str(MONGO_PORT), "--pid-file", str(RUN / "nx-internal.pid"),
                           "--log-file", str(LOG / "nx-27017-internal.log")], env)
        wait_for(lambda: port_open(MONGO_PORT), 30, f"NX-27017 listening on {MONGO_PORT}")

    for offset, service in enumerate(services):
        service_env = dict(env)
        service_env.setdefault(f"{service.upper()}_METRICS_PORT", str(FIRST_METRICS_PORT + offset))
        start(service, [sys.executable, "-m", "shared.cli", "run", service], service_env)
    start("gateway", [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py",
                      "services.gateway.wsgi:app"], dict(env, GATEWAY_PORT=str(GATEWAY_PORT)))

    url = f"http://127.0.0.1:{GATEWAY_PORT}"
    wait_for(lambda: _status(url + "/readyz") == 200, 120, f"{url}/readyz answering 200")
    creds = local_secrets()
    print(f"""
HCRM is up and ready ({url}/readyz = 200).

  gateway        {url}   (API under /api/v1, /healthz, /readyz, /metrics)
  services       {', '.join(services)}  (metrics on 127.0.0.1:{FIRST_METRICS_PORT}..{FIRST_METRICS_PORT + len(services) - 1})
  store          NX-27017 on 127.0.0.1:{MONGO_PORT}, data in {DATA.relative_to(ROOT)}
  broker         RabbitMQ on 127.0.0.1:5672 (exchange hospital.events)
  logs           {LOG.relative_to(ROOT)}/<process>.log
  admin login    {creds['HCRM_ADMIN_USERNAME']} / password in {SECRETS.relative_to(ROOT)}

Send a first event:
  TOKEN=$(curl -s -X POST {url}/api/v1/auth/token -H 'Content-Type: application/json' \\
    -d '{{"username":"{creds['HCRM_ADMIN_USERNAME']}","password":"'$(grep PASSWORD {SECRETS.relative_to(ROOT)} | cut -d= -f2)'"}}' \\
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s -X POST {url}/api/v1/events -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -d '{{"event_id":"first-1","event_type":"PatientVisited","occurred_at":"2026-03-02T10:00:00+08:00","source":"his","data":{{"patient":{{"mrn":"M0001","name":"张伟","phone":"138-0000-0001"}},"visit_id":"V1","department":"心内科","visit_type":"first","visited_at":"2026-03-02T09:30:00+08:00"}}}}'
  curl -s "{url}/api/v1/patients?mrn=M0001" -H "Authorization: Bearer $TOKEN"

Or watch it work: `make demo` publishes a realistic stream of hospital events.
Stop with `make down` (data is kept).""")
    return 0


def down():
    stopped = []
    for name in ["gateway", *reversed(available_services()), "nx-27017"]:
        pid = pid_of(name)
        if pid:
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and pid_of(name):
                time.sleep(0.2)
            if pid_of(name):
                os.killpg(pid, signal.SIGKILL)
            stopped.append(name)
        (RUN / f"{name}.pid").unlink(missing_ok=True)
    print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}; data kept in .local/")
    return 0


def status():
    for name in ["nx-27017", *available_services(), "gateway"]:
        pid = pid_of(name)
        print(f"  {name:<13} {'running, pid ' + str(pid) if pid else 'stopped'}")
    code = _status(f"http://127.0.0.1:{GATEWAY_PORT}/readyz")
    print(f"  readyz        {code or 'no answer'}")
    return 0


def _status(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    print(json.dumps({"usage": "python -m shared.cli up|down|status"}))
