"""The manager's figures (analytics over RPC): summary per docs/RULES.md § Analytics, series."""

from marshmallow import Schema, fields, validate

from services.gateway.http import MANAGERS, STAFF, json_response, report_response, route

# What a report route may answer, as its format= asks (report_response).
REPORT_TYPES = "application/json,text/csv; charset=utf-8,text/html; charset=utf-8"


class SummaryQuery(Schema):
    date_from = fields.Date(required=True, data_key="from")
    date_to = fields.Date(required=True, data_key="to")
    department = fields.String(validate=validate.Length(min=1, max=100))
    compare = fields.String(validate=validate.OneOf(["previous_period", "previous_year"]))


class SeriesQuery(Schema):
    date_from = fields.Date(required=True, data_key="from")
    date_to = fields.Date(required=True, data_key="to")
    department = fields.String(validate=validate.Length(min=1, max=100))
    granularity = fields.String(
        load_default="day", validate=validate.OneOf(["day", "week", "month"])
    )


class MonthlyReportQuery(Schema):
    month = fields.String(
        required=True,
        validate=validate.Regexp(r"^[0-9]{4}-(0[1-9]|1[0-2])$", error="A month YYYY-MM."),
    )
    department = fields.String(validate=validate.Length(min=1, max=100))
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv", "html"]))


class RangeQuery(Schema):
    date_from = fields.Date(required=True, data_key="from")
    date_to = fields.Date(required=True, data_key="to")


class QualityQuery(RangeQuery):
    department = fields.String(validate=validate.Length(min=1, max=100))


class AgentsReportQuery(Schema):
    quarter = fields.String(
        required=True,
        validate=validate.Regexp(r"^[0-9]{4}-Q[1-4]$", error="A quarter YYYY-Qn, such as 2026-Q4."),
    )
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv", "html"]))


def _dates(query):
    return {
        key: value.isoformat() if hasattr(value, "isoformat") else value
        for key, value in query.items()
    }


@route("GET", "/api/v1/analytics/summary", roles=MANAGERS, query=SummaryQuery)
def summary(gw, ctx):
    return json_response(gw.rpc.call("analytics", "summary", **_dates(ctx.query(SummaryQuery))))


@route("GET", "/api/v1/analytics/series", roles=MANAGERS, query=SeriesQuery)
def series(gw, ctx):
    return json_response(gw.rpc.call("analytics", "series", **_dates(ctx.query(SeriesQuery))))


@route(
    "GET",
    "/api/v1/analytics/reports/monthly",
    roles=MANAGERS,
    query=MonthlyReportQuery,
    content_type=REPORT_TYPES,
)
def monthly_report(gw, ctx):
    """The monthly leadership report: JSON, CSV (a download) or a self-contained HTML page."""
    query = ctx.query(MonthlyReportQuery)
    body = gw.rpc.call("analytics", "monthly_report", **query)
    return report_response(body, query["format"], f"hcrm-monthly-report-{query['month']}")


# -- the center's own work (docs/RULES.md § Agents, § Service quality) ----------------------
@route("GET", "/api/v1/analytics/agents", roles=MANAGERS, query=RangeQuery)
def agents(gw, ctx):
    """One line per agent and the team's, each assessed against the targets."""
    return json_response(gw.rpc.call("analytics", "agents", **_dates(ctx.query(RangeQuery))))


@route("GET", "/api/v1/analytics/agents/me", roles=STAFF, query=RangeQuery)
def my_agent_line(gw, ctx):
    """The caller's own line only: the agent is the signed-in user, never a parameter, so no
    query can reach another agent's line (object-level access)."""
    return json_response(
        gw.rpc.call("analytics", "agents", agent=ctx.user, **_dates(ctx.query(RangeQuery)))
    )


@route("GET", "/api/v1/analytics/quality", roles=MANAGERS, query=QualityQuery)
def quality(gw, ctx):
    return json_response(gw.rpc.call("analytics", "quality", **_dates(ctx.query(QualityQuery))))


@route(
    "GET",
    "/api/v1/analytics/reports/agents",
    roles=MANAGERS,
    query=AgentsReportQuery,
    content_type=REPORT_TYPES,
)
def agents_report(gw, ctx):
    """The quarterly assessment: JSON, CSV (a download) or a self-contained HTML page."""
    query = ctx.query(AgentsReportQuery)
    body = gw.rpc.call("analytics", "agents_report", **query)
    return report_response(body, query["format"], f"hcrm-agents-{query['quarter']}")
