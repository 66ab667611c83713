"""hcrm import against the real broker and store: a history file goes through the live path,
survives a kill -9 midway without sending twice, reports duplicates and bad lines, and gives
exactly the figures of the same events sent live."""

import json
import os
import signal
import subprocess

import pytest

from tests import factories
from tests.support import PYTHON, REPO, Platform, wait_until

pytestmark = pytest.mark.integration

SERVICES = ("intake", "followup", "analytics")
RANGE = "from=2026-03-01&to=2026-04-30"


def history():
    """A month of a small hospital: visits, admissions and discharges, consultations."""
    events = [
        factories.visit(
            f"H-{i % 120:04d}",
            phone=f"1380000{i % 120:04d}",
            day=1 + i % 28,
            visit_type="return" if i >= 120 else "first",
        )
        for i in range(360)
    ]
    events += [factories.admitted(f"H-{i:04d}", f"ADM-{i}", day=2 + i % 20) for i in range(30)]
    events += [factories.discharged(f"H-{i:04d}", f"ADM-{i}", day=8 + i % 20) for i in range(30)]
    events += [factories.consultation(f"1390000{i:04d}", day=1 + i % 28) for i in range(40)]
    return events


def write_history(path, events):
    lines = [json.dumps(e, ensure_ascii=False) for e in events]
    lines += lines[5:15]  # ten duplicates, as an export from two systems has
    lines.insert(50, "{not json")
    lines.insert(
        100, json.dumps({**events[0], "event_id": "bad-1", "occurred_at": "2026-03-02 10:00"})
    )
    lines.insert(
        150, json.dumps({**events[1], "event_id": "bad-2", "event_type": "PatientTeleported"})
    )
    lines.insert(200, "")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_import(platform, *args):
    env = platform.env("import")
    return subprocess.Popen(
        [PYTHON, "-m", "shared.cli", "import", *map(str, args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def summary(platform, token):
    status, body = platform.http("GET", f"/api/v1/analytics/summary?{RANGE}", token=token)
    assert status == 200, body
    return {k: v for k, v in body.items() if k not in ("from", "to", "generated_at", "computed_at")}


def test_an_import_killed_midway_resumes_and_equals_the_same_events_sent_live(
    platform, store_server, log_dir, tmp_path
):
    events = history()
    source = tmp_path / "history.jsonl"
    write_history(source, events)
    rejected = tmp_path / "rejected.jsonl"

    subprocess.run(
        [PYTHON, "-m", "shared.cli", "init"],
        cwd=REPO,
        env=platform.env("init"),
        check=True,
        capture_output=True,
        timeout=60,
    )
    # Intake is not running yet, so its queue fills: backpressure holds the import after its
    # first batches, and we kill it there, with its position saved.
    first = run_import(
        platform, source, "--max-queue", "150", "--rejections", rejected, "--no-warm"
    )
    state_path = tmp_path / ("history.jsonl" + ".hcrm-import.json")
    state = wait_until(
        lambda: (
            state_path.exists()
            and json.loads(state_path.read_text())["sent"] >= 200
            and json.loads(state_path.read_text())
        ),
        timeout=60,
        message=lambda: (
            f"the import to confirm its first batches "
            f"({first.poll()}: {first.stderr.read() if first.poll() is not None else ''})"
        ),
    )
    assert first.poll() is None and not state["done"], (
        first.poll(),
        state,
        first.stderr.read() if first.poll() is not None else "",
    )
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)

    for service in SERVICES:
        platform.start_service(service)
    platform.start_gateway()
    second = run_import(platform, source, "--rejections", rejected)
    out, err = second.communicate(timeout=600)
    assert second.returncode == 1, (out, err)  # 1: some lines were rejected
    assert f"sent {len(events)}, duplicates in the files 10, rejected 3" in out, out
    assert "figures of 2026 computed" in out, out
    reasons = [json.loads(line) for line in rejected.read_text().splitlines()]
    assert sorted(r["where"] for r in reasons) == sorted(
        [f"history.jsonl:{n}" for n in (51, 101, 151)]
    ), reasons
    assert any("occurred_at" in r["reasons"] for r in reasons)
    again = run_import(platform, source, "--rejections", rejected)
    out, _ = again.communicate(timeout=120)
    assert "imported already" in out

    # The same events sent live into another installation: the same figures.
    live = Platform(store_server, log_dir)
    try:
        for service in SERVICES:
            live.start_service(service)
        live.start_gateway()
        for event in events:
            live.publish(event)
        token, live_token = platform.token(), live.token()
        # 360 post-visit calls (every visit a different person-day), 3 per discharge, a call per
        # consultation: both installations settle on these, then every figure must be equal.
        settled = wait_until(
            lambda: (lambda a, b: a if a == b and a["followups_due"] == 490 else None)(
                summary(platform, token), summary(live, live_token)
            ),
            timeout=240,
            message=lambda: (
                f"equal figures: {summary(platform, token)} vs {summary(live, live_token)}"
            ),
        )
        assert (settled["visits"], settled["discharges"], settled["consultations"]) == (360, 30, 40)
        _status, patients = platform.http("GET", "/api/v1/patients?limit=1", token=token)
        assert patients["total"] == 120 + 40  # patients and prospects, each once
    finally:
        live.close()
