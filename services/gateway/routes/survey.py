"""The public survey link: GET /survey/<token> shows the questionnaire, POST records the answer
(followup over RPC). No login: the token is the credential, random (256 bits), stored by
followup only as its SHA-256, expiring, and good for one answer. Nothing else is reachable
from here: its own prefix, no staff route, no script, a strict CSP (survey_page.py), and its
own rate limit per client address, stricter than the API's. The token never reaches a log:
the gateway logs the route's pattern, not the path.
"""

import logging
import re

from nameko.exceptions import RemoteError
from werkzeug.wrappers import Response

from services.gateway import survey_page
from services.gateway.http import route
from services.gateway.ratelimit import RateLimiter
from services.gateway.rpc import ServiceUnavailable

log = logging.getLogger("hcrm.gateway")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # followup's survey.TOKEN_PATTERN


def _html(body, status=200, headers=None):
    response = Response(body, status=status, content_type="text/html; charset=utf-8")
    response.headers.update(survey_page.HEADERS)
    response.headers.update(headers or {})
    return response


def _message(lang, kind, headers=None):
    return _html(survey_page.message(lang, kind), survey_page.STATUS[kind], headers)


def _limiter(gw):
    limiter = getattr(gw, "survey_limiter", None)
    if limiter is None:  # one per gateway process, like the API's (ratelimit.py)
        limiter = gw.survey_limiter = RateLimiter(
            gw.config["survey_rate_limit_per_minute"], gw.config["survey_rate_limit_burst"]
        )
    return limiter


def _guarded(handler):
    """The checks every survey request passes first: the rate limit, the token's shape (a
    malformed one never reaches a service); a service down gives a page, not JSON."""

    def guarded(gw, ctx, token):
        lang = survey_page.language(
            ctx.request.args.get("lang"), ctx.request.headers.get("Accept-Language")
        )
        wait = _limiter(gw).acquire(f"survey:{ctx.request.remote_addr}")
        if wait:
            return _message(lang, "busy", {"Retry-After": str(max(1, round(wait)))})
        if not TOKEN.fullmatch(token):
            return _message(lang, "unknown")
        try:
            return handler(gw, ctx, token, lang)
        except (ServiceUnavailable, RemoteError) as exc:
            log.warning(
                "survey page unavailable",
                extra={"request_id": ctx.request_id, "error": exc.__class__.__name__},
            )
            return _message(lang, "down")

    guarded.__doc__ = handler.__doc__
    return guarded


@route("GET", "/survey/<token>", public=False, content_type="text/html; charset=utf-8")
@_guarded
def survey_form(gw, ctx, token, lang):
    """The questionnaire, or why the link no longer opens one."""
    survey = gw.rpc.call("followup", "survey_form", token=token)
    if survey["status"] != "open":
        return _message(lang, survey["status"])
    return _html(survey_page.form(lang, survey))


@route("POST", "/survey/<token>", public=False, content_type="text/html; charset=utf-8")
@_guarded
def survey_answer(gw, ctx, token, lang):
    """The answer (a form post: item=score for the items the patient rated), recorded once."""
    survey = gw.rpc.call("followup", "survey_form", token=token)
    if survey["status"] != "open":
        return _message(lang, survey["status"])
    keys = [item["key"] for item in survey["items"]]
    scores, bad = {}, False
    for key in keys:
        value = ctx.request.form.get(key)
        if value in (None, ""):
            continue
        if value not in ("1", "2", "3", "4", "5"):
            bad = True
            continue
        scores[key] = int(value)
    if bad or not scores:
        page = survey_page.form(
            lang, survey, survey_page.TEXT[lang]["error_bad" if bad else "error_none"], scores
        )
        return _html(page, 400)
    answer = gw.rpc.call("followup", "answer_survey", token=token, scores=scores)
    return _message(lang, "thanks" if answer["status"] == "answered" else answer["status"])
