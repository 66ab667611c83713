"""What a batch of events does to analytics' read model beyond its facts (docs/EVENTS.md, v1.1):
the people documents, the corrections and the merges, and the days whose partials they change.

Each step writes first and reads after, and the other side does the same, so two batches
handled at once never miss each other: a fact written checks the voids and aliases stored
by then; a correction or merge stored first finds the facts written by then. The reads are
by _id for a whole batch; an ordinary batch costs one people read, and one voids read when
it holds visits, admissions or discharges. The rare fix-ups cost what they need.

Every function returns the ISO days whose partials changed (store.touch_days marks them).
"""

import logging

from services.analytics import domain

log = logging.getLogger(__name__)
WINDOW_S = (
    domain.CONVERSION_DAYS * 86400
)  # a visit converts the consultations of the 30 days before it
PERSON_SECTIONS = (
    "v",
    "c",
)  # what a visit's other days are read from (not the other facts' entries)


def record_facts(store, facts):
    """After `facts` are written: their people entries, then the patient ids merged away and the
    facts already voided (a correction that came first), then the days they change."""
    if not facts:
        return set()
    store.add_person_entries(facts)
    people = store.people({fact.get("patient_id") for fact in facts}, sections=PERSON_SECTIONS)
    keys = {key for fact in facts for key in domain.void_keys(fact)}
    rule = domain.void_rule(store.voids(keys)) if keys else None
    aliases = people.aliases()
    moves = [
        (fact, fact["patient_id"], people.person(fact["patient_id"]))
        for fact in facts
        if fact.get("patient_id") in aliases
    ]
    for fact, _, person in moves:
        fact["patient_id"] = person  # a merge came first: the fact is the survivor's
    voided = [fact for fact in facts if domain.is_void(fact, rule)]
    store.move_entries(moves)
    store.mark_void(voided)
    if moves or voided:
        people = store.people({fact.get("patient_id") for fact in facts}, sections=PERSON_SECTIONS)
    touched = {fact["date"] for fact in facts}
    # A voided visit too: a refresh may have seen it before it was flagged.
    return touched | visit_days(store, people, [f for f in facts if f["type"] == "PatientVisited"])


def visit_days(store, people, visits):
    """The other days the arrival or voiding of `visits` changes: the consultations they may
    convert (same phone or MRN, or the same person) and the people's next visits, whose
    previous visit they are (unique patients). One read for the consultations of them all."""
    touched = store.consultation_days(visits, WINDOW_S)
    for visit in visits:
        touched |= people.consultation_days(visit, WINDOW_S) | people.following_visit_days(visit)
    return touched


def apply_voids(store, voids):
    """[(key, until_ts)] of the batch's corrections: stored, then the facts already recorded
    that they void are flagged, and their days (with what those facts changed) touched."""
    if not voids:
        return set()
    store.add_voids(voids)
    facts = {}
    for ref in {domain.ref_of_void(key) for key, _ in voids}:
        facts.update((fact["_id"], fact) for fact in store.facts_of_ref(ref))
    keys = {key for fact in facts.values() for key in domain.void_keys(fact)}
    rule = domain.void_rule(store.voids(keys))
    voided = [
        fact for fact in facts.values() if not fact.get("void") and domain.is_void(fact, rule)
    ]
    if not voided:
        return set()  # a duplicate correction, or one whose facts have not come yet
    store.mark_void(voided)
    touched = {fact["date"] for fact in voided}
    visits = [fact for fact in voided if fact["type"] == "PatientVisited"]
    if visits:
        people = store.people(
            {visit.get("patient_id") for visit in visits}, sections=PERSON_SECTIONS
        )
        touched |= visit_days(store, people, visits)
    log.info(
        "facts voided by a correction",
        extra={"facts": len(voided), "types": sorted({fact["type"] for fact in voided})},
    )
    return touched


def apply_merge(store, retired, survivor):
    """PatientsMerged: `retired` is `survivor` from now on. The alias is stored, then what is
    recorded under the retired id (and the ids merged into it before) moves to the person the
    survivor is now (R -> S -> T: T), and every day of that person's visits and consultations
    is touched: their unique-patient counts and conversions change."""
    people = store.people({retired, survivor})
    if people.person(survivor) == retired:
        log.warning(
            "a merge into a record merged into the retired one: ignored",
            extra={"retired": retired, "survivor": survivor},
        )
        return set()
    store.alias(retired, survivor)
    people = store.people({retired, survivor})  # read after the alias: a batch writing under
    person = people.person(survivor)  # the retired id now either shows here or sees it
    retired_doc = people.docs.get(retired) or {}
    entries = [
        entry for section in ("v", "c", "o") for entry in (retired_doc.get(section) or {}).values()
    ]
    facts = store.facts_by_id({entry["id"] for entry in entries})
    store.move_entries([(fact, retired, person) for fact in facts])
    touched = people.days(person) | {
        domain.day_text(entry["day"])
        for section in ("v", "c")
        for entry in (retired_doc.get(section) or {}).values()
    }
    log.info("patients merged", extra={"retired": retired, "survivor": person, "facts": len(facts)})
    return touched
