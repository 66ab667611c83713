"""`hcrm report monthly`: the monthly leadership report from the running analytics service.

  hcrm report monthly --month 2026-10 --format html --out report-2026-10.html
  hcrm report monthly --month 2026-10 --format csv > report.csv

The same report as `GET /api/v1/analytics/reports/monthly` (services/analytics/report.py).
"""

import argparse
import json
import sys

from nameko.exceptions import RemoteError, RpcTimeout
from nameko.standalone.rpc import ClusterRpcProxy


def main(args: argparse.Namespace) -> int:
    from shared.config import BaseConfig, load_config

    config = load_config("report", BaseConfig)
    try:
        with ClusterRpcProxy(
            {"AMQP_URI": config["amqp_uri"], "serializer": "json"}, timeout=args.timeout
        ) as cluster:
            body = cluster.analytics.monthly_report(
                month=args.month, department=args.department, format=args.format
            )
    except RpcTimeout:
        print(
            f"hcrm report: the analytics service did not answer within {args.timeout:g}s",
            file=sys.stderr,
        )
        return 1
    except RemoteError as exc:
        print(f"hcrm report: {exc.value}", file=sys.stderr)
        return 2
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, indent=2)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
