"""The manager's figures (analytics over RPC): summary per PROTOCOLS.md § Analytics, series."""
from marshmallow import Schema, fields, validate
from werkzeug.wrappers import Response

from services.gateway.http import MANAGERS, json_response, route


class SummaryQuery(Schema):
    date_from = fields.Date(required=True, data_key="from")
    date_to = fields.Date(required=True, data_key="to")
    department = fields.String(validate=validate.Length(min=1, max=100))
    compare = fields.String(validate=validate.OneOf(["previous_period", "previous_year"]))


class SeriesQuery(Schema):
    date_from = fields.Date(required=True, data_key="from")
    date_to = fields.Date(required=True, data_key="to")
    department = fields.String(validate=validate.Length(min=1, max=100))
    granularity = fields.String(load_default="day", validate=validate.OneOf(["day", "week", "month"]))


class MonthlyReportQuery(Schema):
    month = fields.String(required=True, validate=validate.Regexp(r"^[0-9]{4}-(0[1-9]|1[0-2])$",
                                                                  error="A month YYYY-MM."))
    department = fields.String(validate=validate.Length(min=1, max=100))
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv", "html"]))


def _dates(query):
    return {key: value.isoformat() if hasattr(value, "isoformat") else value for key, value in query.items()}


@route("GET", "/api/v1/analytics/summary", roles=MANAGERS, query=SummaryQuery)
def summary(gw, ctx):
    return json_response(gw.rpc.call("analytics", "summary", **_dates(ctx.query(SummaryQuery))))


@route("GET", "/api/v1/analytics/series", roles=MANAGERS, query=SeriesQuery)
def series(gw, ctx):
    return json_response(gw.rpc.call("analytics", "series", **_dates(ctx.query(SeriesQuery))))


@route("GET", "/api/v1/analytics/reports/monthly", roles=MANAGERS, query=MonthlyReportQuery,
       content_type="application/json,text/csv; charset=utf-8,text/html; charset=utf-8")
def monthly_report(gw, ctx):
    """The monthly leadership report: JSON, CSV (a download) or a self-contained HTML page."""
    query = ctx.query(MonthlyReportQuery)
    body = gw.rpc.call("analytics", "monthly_report", **query)
    filename = f"hcrm-monthly-report-{query['month']}"
    if query["format"] == "csv":
        return Response(body, content_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f"attachment; filename={filename}.csv"})
    if query["format"] == "html":
        return Response(body, content_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                                 "Content-Disposition": f"inline; filename={filename}.html"})
    return json_response(body)
