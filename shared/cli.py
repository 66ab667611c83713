"""`hcrm`: the command line of the platform.

  hcrm run <service>        run one service process (intake, followup, ...)
  hcrm init                 declare the whole RabbitMQ topology (idempotent)
  hcrm asyncapi             print the AsyncAPI document of the inbound contract
  hcrm dlq list|show|replay inspect and replay dead-lettered / rejected messages
  hcrm stream [--offset ..] print the analytics stream as JSON lines (resumable by offset)
  hcrm report monthly ...   the monthly leadership report (HTML with charts, CSV or JSON)
  hcrm simulate [...]       publish a realistic stream of hospital events
  hcrm up | down | status   the local runner (deploy/local.py): everything on this machine
"""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hcrm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one service")
    run.add_argument("service")
    commands.add_parser("init", help="declare exchanges, queues and the analytics stream")
    commands.add_parser("asyncapi", help="print the AsyncAPI document of the inbound contract")
    simulate = commands.add_parser("simulate", help="publish realistic hospital events")
    simulate.add_argument("--count", type=int, default=200)
    simulate.add_argument("--rate", type=float, default=50.0, help="events per second (0 = as fast as possible)")
    simulate.add_argument("--seed", type=int, default=None)
    simulate.add_argument("--via", choices=["amqp", "http"], default="amqp")
    dlq = commands.add_parser("dlq", help="list, show or replay dead-lettered messages")
    dlq.add_argument("action", choices=["list", "show", "replay"])
    dlq.add_argument("queue", nargs="?", help="e.g. intake.dlq or hospital.events.rejected")
    dlq.add_argument("--limit", type=int, default=100)
    dlq.add_argument("--unmasked", action="store_true", help="show names and phones (audited access only)")
    stream = commands.add_parser("stream", help="print the analytics stream as JSON lines")
    stream.add_argument("--offset", default="first", help="first | last | next | N | ISO time")
    stream.add_argument("--limit", type=int, default=None)
    stream.add_argument("--follow", action="store_true", help="keep waiting for new events")
    report = commands.add_parser("report", help="the monthly leadership report")
    report.add_argument("kind", choices=["monthly"])
    report.add_argument("--month", required=True, help="YYYY-MM")
    report.add_argument("--department", default=None)
    report.add_argument("--format", choices=["html", "csv", "json"], default="html")
    report.add_argument("--out", default=None, help="a file (default: standard output)")
    report.add_argument("--timeout", type=float, default=60.0)
    for name in ("up", "down", "status"):
        commands.add_parser(name, help=f"local runner: {name}")
    args = parser.parse_args(argv)

    if args.command == "run":
        from shared import runner  # monkey-patches eventlet: only for service processes
        runner.run(args.service)
    elif args.command == "init":
        return init()
    elif args.command == "stream":
        from shared import stream as stream_reader
        return stream_reader.main(args)
    elif args.command == "report":
        from shared import report as reporter
        return reporter.main(args)
    elif args.command == "dlq":
        from shared import dlq
        if args.action != "list" and not args.queue:
            parser.error("dlq show/replay need a QUEUE")
        return dlq.main(args)
    elif args.command == "asyncapi":
        from shared.asyncapi import render
        sys.stdout.write(render())
    elif args.command == "simulate":
        from shared import simulate as simulator
        return simulator.main(args)
    else:
        from deploy import local
        return getattr(local, args.command)()
    return 0


def init():
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


def _safe(uri):
    from kombu.utils.url import maybe_sanitize_url
    return maybe_sanitize_url(uri)


if __name__ == "__main__":
    sys.exit(main())
