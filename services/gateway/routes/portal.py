"""The staff portal: static files (HTML, CSS, vanilla JS) from services/gateway/portal/.

No token on the static files: they hold no data. Every figure and record the portal shows
comes from the /api/v1 routes, which check the bearer token and audit patient reads.
Only files under the portal folder, with a known extension, are served (no traversal).
"""

import pathlib

from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from services.gateway.http import ApiError, route

PORTAL_DIR = (pathlib.Path(__file__).resolve().parent.parent / "portal").resolve()

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json; charset=utf-8",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}

# default-src 'self': no inline script or style, no CDN, no third-party connection.
# Reports fetched with the token are shown from blob: URLs, hence img/frame blob:.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _not_found():
    return ApiError(404, "not_found", "No such portal file.")


def resolve(name):
    """The file `name` names under PORTAL_DIR, or None: no '..', no hidden files, no
    absolute paths, no backslashes or NULs, nothing outside the folder, known types only."""
    if not name or "\\" in name or "\x00" in name or name.startswith("/"):
        return None
    parts = name.split("/")
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        return None
    path = (PORTAL_DIR / name).resolve()
    if not path.is_relative_to(PORTAL_DIR) or not path.is_file():
        return None
    if path.suffix.lower() not in CONTENT_TYPES:
        return None
    return path


def _serve(path):
    response = Response(path.read_bytes(), content_type=CONTENT_TYPES[path.suffix.lower()])
    response.headers.update(SECURITY_HEADERS)
    return response


@route("GET", "/")
def root(gw, ctx):
    return redirect("/portal/", 302)


@route("GET", "/portal")
def portal_no_slash(gw, ctx):
    return redirect("/portal/", 302)


@route("GET", "/portal/")
def portal_index(gw, ctx):
    path = resolve("index.html")
    if path is None:  # an install without the static files (see docs/PORTAL.md)
        raise _not_found()
    return _serve(path)


@route("GET", "/portal/<path:name>")
def portal_file(gw, ctx, name):
    path = resolve(name)
    if path is None:
        raise _not_found()
    return _serve(path)
