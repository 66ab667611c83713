"""bench.compare reads the figures the benches print and tabulates two trees' runs: the parsing
(on output as bench.intake_throughput and bench.latency print it) and the table, without
running a bench."""

from bench.compare import (
    OTHER_WORK,
    cell,
    change,
    code_and_load,
    parse_latency,
    parse_pipeline,
    round_line,
    table,
)

# What `python -m bench.intake_throughput 2000` prints: record()'s block (RESULTS.md, 2026-11-27).
PIPELINE_OUTPUT = """\

## pipeline throughput (intake → followup → analytics), 2000 events, 1 replica(s) each — 2026-11-27 19:59 UTC
- machine: vm · 2 cores · 23.5 GB RAM · Python 3.11.7 · RabbitMQ 3.10.8 · nameko 2.14.1, kombu 5.7.0, pymongo 4.20.1, eventlet 0.41.3, gunicorn 23.0.0, nx-27017 0.8.1 · load average at the end 4.31 3.26 2.44
- code: git 0122ea7
- command: `.venv/bin/python -m bench.intake_throughput 2000`
- publish: 352 events/s (5.7 s)
- end to end (publish → recorded by intake, followup and analytics): 84 events/s (23.7 s)
- every event recorded by: intake at 23.5 s (85 events/s), followup at 23.6 s (85 events/s), analytics at 23.7 s (84 events/s)
- checked by event id: 2000 of 2000 in each of intake, followup, analytics, none missing
- cascade: 1866 of 1866 follow-up tasks folded by analytics at 24.2 s
- CPU per event (publish to recorded by all three): 21.6 ms in all, bench 0.8 ms, nx-27017 9.1 ms, intake 3.9 ms, followup 3.5 ms, analytics 1.8 ms, rabbitmq (machine's) 2.4 ms
- store round trips per event: 11.24 in all; analytics 1.90 (find 1.69, update 0.17, getMore 0.04, distinct 0.00); followup 4.26 (insert 2.00, find 1.98, update 0.27, findAndModify 0.01); intake 5.08 (find 2.50, insert 1.33, update 1.25, findAndModify 0.00)
- peak RSS (VmHWM, sampled every 0.5 s, children included): bench 52 MB, rabbitmq (machine's) 257 MB, nx-27017 57 MB, intake 52 MB, followup 63 MB, analytics 54 MB
- CPU time over 24 s (% of one core): bench 1.6 s (7%), rabbitmq (machine's) 4.8 s (20%), nx-27017 18.5 s (77%), intake 7.9 s (33%), followup 7.0 s (29%), analytics 3.7 s (15%)
- machine: 44 CPU-s busy of 48 available (91%); by processes outside this bench (other work on the machine): 0 CPU-s (1%)
"""  # noqa: E501

# The lines of one rate `python -m bench.latency --rates 50 ...` prints as it goes, then the
# same lines again in record()'s block (RESULTS.md, 2026-11-27).
LATENCY_LINES = """\
**50/s for 60 s**: published 3000 in 60.0 s = 50.0/s achieved; FollowUpScheduled arrived for 2990 of 3000 (10 not arrived when the bench stopped waiting, 30.0 s after the last publish; --drain 30 s)
50/s publish → FollowUpScheduled (over the 2990 arrived): p50 184 ms, p95 363 ms, p99 441 ms, max 640 ms; p50 in the first tenth of the run 93 ms, in the last tenth 151 ms
50/s publish → intake's PatientVisited: p50 104 ms, p99 287 ms (3000 arrived)
50/s events slower than 100 ms: 2391 of 3000, published within 60 distinct seconds of the run (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, ...); the slowest published at 59.8 s (640 ms), 59.8 s (638 ms), 59.8 s (618 ms)
50/s machine: 105 CPU-s busy of 121 available (87%); by processes outside this bench (other work on the machine): 1 CPU-s (1%)
"""  # noqa: E501
LATENCY_OUTPUT = (
    LATENCY_LINES
    + """
## latency, PatientVisited → FollowUpScheduled, at 50/s for 60 s each — 2026-11-27 19:18 UTC
- machine: vm · 2 cores · 23.5 GB RAM · Python 3.11.7 · RabbitMQ 3.10.8 · nameko 2.14.1, kombu 5.7.0, pymongo 4.20.1, eventlet 0.41.3, gunicorn 23.0.0, nx-27017 0.8.1 · load average at the end 4.88 2.76 1.49
- code: git 21a012e + uncommitted changes in services/analytics
- command: `.venv/bin/python -m bench.latency --rates 50 --duration 60 --drain 30`
"""  # noqa: E501
    + "".join(f"- {line}\n" for line in LATENCY_LINES.splitlines())
)


def test_the_pipeline_figures_are_read_from_what_intake_throughput_prints():
    figures = parse_pipeline(PIPELINE_OUTPUT)
    assert figures == {
        "end to end (events/s)": "84",
        "publish (events/s)": "352",
        "CPU per event, all processes (ms)": "21.6",
        "store round trips per event, all services": "11.24",
        OTHER_WORK: "1",
        "CPU per event, bench (ms)": "0.8",
        "CPU per event, nx-27017 (ms)": "9.1",
        "CPU per event, intake (ms)": "3.9",
        "CPU per event, followup (ms)": "3.5",
        "CPU per event, analytics (ms)": "1.8",
        "CPU per event, rabbitmq (machine's) (ms)": "2.4",
        "store round trips per event, analytics": "1.90",
        "store round trips per event, followup": "4.26",
        "store round trips per event, intake": "5.08",
    }
    assert next(iter(figures)) == "end to end (events/s)"  # the headline rows first
    assert code_and_load(PIPELINE_OUTPUT) == ("git 0122ea7", "4.31 3.26 2.44")


def test_the_latency_figures_are_read_from_what_latency_prints():
    assert parse_latency(LATENCY_OUTPUT) == {
        "events published": "3000",
        "FollowUpScheduled arrived": "2990",
        "p50 publish → FollowUpScheduled (ms)": "184",
        "p95 publish → FollowUpScheduled (ms)": "363",
        "p99 publish → FollowUpScheduled (ms)": "441",
        "max publish → FollowUpScheduled (ms)": "640",
        OTHER_WORK: "1",
    }
    assert code_and_load(LATENCY_OUTPUT) == (
        "git 21a012e + uncommitted changes in services/analytics",
        "4.88 2.76 1.49",
    )


def test_a_figure_not_printed_is_none_and_the_rest_are_still_read():
    nothing_arrived = LATENCY_LINES.replace(
        "p50 184 ms, p95 363 ms, p99 441 ms, max 640 ms", "p50 n/a, p95 n/a, p99 n/a, max n/a"
    )
    figures = parse_latency(nothing_arrived)
    assert figures["p50 publish → FollowUpScheduled (ms)"] is None  # not the first tenth's p50
    assert figures["max publish → FollowUpScheduled (ms)"] is None
    assert figures["FollowUpScheduled arrived"] == "2990"

    crashed = "Traceback (most recent call last):\n  ...\nAssertionError: events missing\n"
    assert parse_pipeline(crashed) == {
        "end to end (events/s)": None,
        "publish (events/s)": None,
        "CPU per event, all processes (ms)": None,
        "store round trips per event, all services": None,
        OTHER_WORK: None,
    }
    assert code_and_load(crashed) == ("?", "?")


def test_a_cell_is_the_median_and_the_range_at_the_precision_printed():
    assert cell(["75", "84", "80"]) == "80 (75–84)"
    assert cell(["11.24", "12.47"]) == "11.86 (11.24–12.47)"  # two runs: the mean of both
    assert cell(["21.6"]) == "21.6"
    assert cell(["3.9", "4"]) == "4.0 (3.9–4.0)"
    assert cell([None, "80", "75"]) == "78 (75–80); ? in 1 of 3 runs"
    assert cell([None, None]) == "?"


def test_after_against_before_is_the_medians_difference_in_percent():
    assert change(["80", "75", "84"], ["88", "90", "70"]) == "+10%"
    assert change(["100"], ["95"]) == "-5%"
    assert change([None], ["95"]) == ""
    assert change(["0"], ["1"]) == ""


def test_the_table_has_a_row_for_every_figure_any_run_printed():
    runs = {
        "before": [parse_pipeline(PIPELINE_OUTPUT), parse_pipeline("crashed")],
        "after": [
            parse_pipeline(PIPELINE_OUTPUT.replace(": 84 events/s", ": 92 events/s")),
            parse_pipeline(PIPELINE_OUTPUT.replace(": 84 events/s", ": 88 events/s")),
        ],
    }
    lines = table(runs)
    assert lines[:3] == [
        "  | figure | before: median (min–max) | after: median (min–max) | after vs before |",
        "  |---|---|---|---|",
        "  | end to end (events/s) | 84; ? in 1 of 2 runs | 90 (88–92) | +7% |",
    ]
    nx = "  | CPU per event, nx-27017 (ms) | 9.1; ? in 1 of 2 runs | 9.1 (9.1–9.1) | +0% |"
    assert nx in lines
    other = f"  | {OTHER_WORK} | 1; ? in 1 of 2 runs | 1 (1–1) |  |"  # the machine's, no change
    assert other in lines
    assert len(lines) == 2 + 14  # the crashed run printed no rows of its own
    assert all(line.startswith("  |") and line.count("|") == 5 for line in lines)


def test_a_round_shows_its_headline_or_how_it_failed():
    headline = ("end to end (events/s)", OTHER_WORK)
    figures = parse_pipeline(PIPELINE_OUTPUT)
    assert round_line(1, figures, headline, 0, PIPELINE_OUTPUT, "/tmp/x.log", "4.31") == [
        "  - round 1: end to end (events/s): 84; other work on the machine (% of its CPU): 1; "
        "load average at the end 4.31"
    ]
    output = "starting\n\nTraceback (most recent call last):\nAssertionError: events missing\n"
    assert round_line(2, parse_pipeline(output), headline, 1, output, "/tmp/y.log", "?") == [
        "  - round 2: FAILED, exit code 1 (its output: /tmp/y.log); end to end (events/s): ?; "
        "other work on the machine (% of its CPU): ?; it ended:",
        "    - `starting`",
        "    - `Traceback (most recent call last):`",
        "    - `AssertionError: events missing`",
    ]
