"""Errors shared by services and the gateway, and the one error format of contract/API.md."""


class NotFound(Exception):
    """An id that names nothing. The gateway answers 404."""


class Conflict(Exception):
    """A double booking or an illegal state change. The gateway answers 409."""


class BadRequest(Exception):
    """Input a service refuses; `details` maps field paths to messages. The gateway answers 400."""

    def __init__(self, message, details=None):
        super().__init__(message)
        self.details = details or {}


class TransientError(Exception):
    """A failure worth retrying (a dependency is down). Consumers back off and retry."""


# nameko serialises an exception raised in an RPC as RemoteError carrying the class name;
# the gateway maps these names back to HTTP status codes.
REMOTE_STATUS = {"NotFound": 404, "Conflict": 409, "BadRequest": 400}


def error_body(code, message, details=None):
    return {"error": {"code": code, "message": message, "details": details or {}}}


class InvalidMessage(ValueError):
    """A message that breaks its contract; `errors` maps field paths to messages.

    Consumers move it to the rejected queue with the reason: retrying can never fix it.
    """

    def __init__(self, errors):
        self.errors = errors
        super().__init__("; ".join(f"{path}: {' '.join(msgs)}" for path, msgs in errors.items()))
