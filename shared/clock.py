"""The one source of "now" for services: timezone-aware UTC.

Domain code takes "now" as a parameter (docs/DEVELOPING.md); entrypoints and stores read it
here, so every timestamp they write carries its offset.
"""

import datetime


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
