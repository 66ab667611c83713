"""`hcrm`: the command line of the platform.

hcrm run <service>        run one service process (intake, followup, ...)
hcrm init                 declare the whole RabbitMQ topology (idempotent)
hcrm asyncapi             print the AsyncAPI document of the events (in and out)
hcrm dlq list|show|replay inspect and replay dead-lettered / rejected messages
hcrm stream [--offset ..] print the analytics stream as JSON lines (resumable by offset)
hcrm trace ID [--logs D]  the path of one event through the services' logs (shared/trace_path.py)
hcrm report monthly ...   the monthly leadership report (HTML with charts, CSV or JSON)
hcrm simulate [...]       hospital events: the last hours, or --months N of history (make demo)
hcrm hl7 send FILE...     send HL7 v2 messages over MLLP, print each ACK (services/hl7/client.py)
hcrm hl7 replay [...]     derive the events of stored HL7 messages again and publish them
hcrm import FILE...       load a hospital's history (.jsonl events, .hl7 messages), resumable
hcrm backup DIR           every service's database into a new folder, with a manifest
hcrm restore DIR [--yes]  replace every database with a checked backup (services stopped)
hcrm up | down | status   the local runner (shared/local_runner.py): everything on this machine
hcrm clean [--yes]        stop everything, delete .local/ and the installation's vhost
"""

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hcrm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one service")
    run.add_argument("service")
    commands.add_parser("init", help="declare exchanges, queues and the analytics stream")
    commands.add_parser("asyncapi", help="print the AsyncAPI document of the events (in and out)")
    simulate = commands.add_parser("simulate", help="publish realistic hospital events")
    simulate.add_argument("--count", type=int, default=200)
    simulate.add_argument(
        "--rate", type=float, default=50.0, help="events per second (0 = as fast as possible)"
    )
    simulate.add_argument("--seed", type=int, default=None)
    simulate.add_argument("--via", choices=["amqp", "http"], default="amqp")
    simulate.add_argument(
        "--months",
        type=int,
        default=0,
        help="date the events over this many months up to now, then do the "
        "center's work through the gateway (make demo: 3); 0 = the last hours",
    )
    simulate.add_argument(
        "--events-only",
        action="store_true",
        help="with --months: publish the events, leave the center's work undone",
    )
    dlq = commands.add_parser("dlq", help="list, show or replay dead-lettered messages")
    dlq.add_argument("action", choices=["list", "show", "replay"])
    dlq.add_argument("queue", nargs="?", help="e.g. intake.dlq or hospital.events.rejected")
    dlq.add_argument(
        "--limit",
        type=int,
        default=None,
        help="messages to show (default 10) or replay (default 100)",
    )
    dlq.add_argument(
        "--width",
        type=int,
        default=None,
        help="show: cut text values longer than this (default 80; 0 = never)",
    )
    dlq.add_argument(
        "--unmasked", action="store_true", help="show names and phones (audited access only)"
    )
    stream = commands.add_parser("stream", help="print the analytics stream as JSON lines")
    stream.add_argument("--offset", default="first", help="first | last | next | N | ISO time")
    stream.add_argument("--limit", type=int, default=None)
    stream.add_argument("--follow", action="store_true", help="keep waiting for new events")
    trace = commands.add_parser(
        "trace", help="the path of one trace through the services' JSON logs"
    )
    trace.add_argument(
        "id", help="a trace id (32 hex digits, the gateway's X-Trace-Id) or a traceparent"
    )
    trace.add_argument(
        "--logs", default=None, help="a folder of log files, or one file (default: .local/log)"
    )
    report = commands.add_parser("report", help="the monthly leadership report")
    report.add_argument("kind", choices=["monthly"])
    report.add_argument("--month", required=True, help="YYYY-MM")
    report.add_argument("--department", default=None)
    report.add_argument("--format", choices=["html", "csv", "json"], default="html")
    report.add_argument("--out", default=None, help="a file (default: standard output)")
    report.add_argument("--timeout", type=float, default=60.0)
    hl7 = commands.add_parser(
        "hl7", help="HL7 v2 feed tools: send files over MLLP, replay stored messages"
    )
    hl7_commands = hl7.add_subparsers(dest="hl7_command", required=True)
    hl7_send = hl7_commands.add_parser(
        "send", help="send the messages of files over MLLP, print each ACK"
    )
    hl7_send.add_argument("files", nargs="+", metavar="FILE")
    hl7_send.add_argument("--host", default="127.0.0.1")
    hl7_send.add_argument("--port", type=int, default=None, help="default: $HL7_PORT or 2575")
    hl7_send.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for each ACK"
    )
    hl7_replay = hl7_commands.add_parser(
        "replay", help="derive and publish the events of stored messages again"
    )
    hl7_replay.add_argument(
        "--since", default=None, help="received at or after (ISO 8601 with offset)"
    )
    hl7_replay.add_argument(
        "--control-id", default=None, help="only the message(s) with this MSH-10"
    )
    hl7_replay.add_argument(
        "--dry-run", action="store_true", help="count what would change, publish nothing"
    )
    hl7_replay.add_argument("--timeout", type=float, default=120.0)
    load = commands.add_parser(
        "import", help="load a hospital's history from files through the live path"
    )
    load.add_argument(
        "files", nargs="+", metavar="FILE", help=".jsonl contract events or .hl7 HL7 v2 messages"
    )
    load.add_argument(
        "--rejections", default=None, help="where rejected lines go (JSON lines with reasons)"
    )
    load.add_argument(
        "--max-queue",
        type=int,
        default=2000,
        help="wait while intake has more than this many events queued (backpressure)",
    )
    load.add_argument(
        "--restart", action="store_true", help="ignore a saved position: import from the start"
    )
    load.add_argument(
        "--no-warm",
        dest="warm",
        action="store_false",
        help="do not wait for the services and compute the years' figures afterwards",
    )
    load.add_argument("--hl7-host", default="127.0.0.1")
    load.add_argument("--hl7-port", type=int, default=int(os.environ.get("HL7_PORT", 2575)))
    load.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for each HL7 ACK"
    )
    backup = commands.add_parser(
        "backup", help="copy every service's database into a new folder, with a manifest"
    )
    backup.add_argument("dir")
    restore = commands.add_parser(
        "restore", help="replace every service's database with a checked backup"
    )
    restore.add_argument("dir")
    restore.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    for name in ("up", "down", "status"):
        commands.add_parser(name, help=f"local runner: {name}")
    clean = commands.add_parser(
        "clean",
        help="local runner: stop everything, delete .local/ "
        "and this installation's RabbitMQ virtual host",
    )
    clean.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    args = parser.parse_args(argv)

    if args.command == "run":
        from shared import runner  # monkey-patches eventlet: only for service processes

        runner.run(args.service)
    elif args.command == "init":
        return init()
    elif args.command == "stream":
        from shared import stream as stream_reader

        return stream_reader.main(args)
    elif args.command == "trace":
        from shared import trace_path

        return trace_path.main(args)
    elif args.command == "report":
        from shared import report as reporter

        return reporter.main(args)
    elif args.command == "dlq":
        from shared import dlq as dead_letters

        if args.action != "list" and not args.queue:
            parser.error("dlq show/replay need a QUEUE")
        return dead_letters.main(args)
    elif args.command == "asyncapi":
        from shared.asyncapi import render

        sys.stdout.write(render())
    elif args.command == "simulate":
        from shared import simulate as simulator

        return simulator.main(args)
    elif args.command == "import":
        from shared import importer

        return importer.main(args)
    elif args.command in ("backup", "restore"):
        from shared import backup as backups

        return backups.main(args)
    elif args.command == "hl7":
        from services.hl7 import client as hl7_client

        return hl7_client.main(args)
    elif args.command == "clean":
        from shared import local_runner

        return local_runner.clean(yes=args.yes)
    else:
        from shared import local_runner

        return getattr(local_runner, args.command)()
    return 0


def init() -> int:
    from shared.config import BaseConfig, ConfigError, load_config
    from shared.topology import declare_topology

    try:
        config = load_config("init", BaseConfig)
    except ConfigError as exc:
        print(f"hcrm init: {exc}", file=sys.stderr)
        return 2
    names = declare_topology(config)
    print(f"declared {len(names)} exchanges and queues on {_safe(config['amqp_uri'])}")
    return 0


def _safe(uri: str) -> str:
    from shared.messaging import safe_uri  # every URI of a cluster's node list masked

    return safe_uri(uri)


if __name__ == "__main__":
    sys.exit(main())
