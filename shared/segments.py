"""The patient's segment (docs/DOMAIN.md: a fifth of patients bring most of the value; know
them): one rule for every service that needs it (intake's record, campaigns' targeting).

  key         5+ visits or 2+ admissions
  regular     2-4 visits, or 1 admission
  one_time    exactly one visit
  registered  registered, never visited or admitted
  prospect    consultations only

Visits and admissions are those that still count (shared/corrections.py).
"""

from collections.abc import Mapping
from typing import Any

SEGMENTS = ("prospect", "registered", "one_time", "regular", "key")


def segment(facts: Mapping[str, Any]) -> str:
    """`facts`: visit_count, admission_count and registered (missing ones count as 0 / False)."""
    visits, admissions = facts.get("visit_count", 0), facts.get("admission_count", 0)
    if visits >= 5 or admissions >= 2:
        return "key"
    if visits >= 2 or admissions == 1:
        return "regular"
    if visits == 1:
        return "one_time"
    if facts.get("registered"):
        return "registered"
    return "prospect"
