"""The OpenAPI document (generated from the routes' declarations, openapi.py)."""

import functools

from services.gateway import openapi
from services.gateway.http import json_response, route

ANY_ROLE = ("agent", "integration")  # every signed-in caller (staff roles rank above agent)


@functools.lru_cache(maxsize=1)
def _document():
    return openapi.document()


@route("GET", "/api/v1/openapi.json", roles=ANY_ROLE)
def openapi_document(gw, ctx):
    """The OpenAPI 3 document of this API."""
    return json_response(_document())
