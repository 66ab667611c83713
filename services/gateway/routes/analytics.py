"""The manager's figures (analytics over RPC): summary per PROTOCOLS.md § Analytics, series."""
from marshmallow import Schema, fields, validate

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


def _dates(query):
    return {key: value.isoformat() if hasattr(value, "isoformat") else value for key, value in query.items()}


@route("GET", "/api/v1/analytics/summary", roles=MANAGERS)
def summary(gw, ctx):
    return json_response(gw.rpc.call("analytics", "summary", **_dates(ctx.query(SummaryQuery))))


@route("GET", "/api/v1/analytics/series", roles=MANAGERS)
def series(gw, ctx):
    return json_response(gw.rpc.call("analytics", "series", **_dates(ctx.query(SeriesQuery))))
