"""PID (and MRG) -> the contract's `patient` object: identity, name, phone, profile, death.

docs/HL7.md, "Versions, characters, identity":
- MRN: the PID-3 repetition whose identifier type code (CX-5) is a configured one and, where
  configured, whose assigning authority (CX-4) is the hospital's; never chosen by position.
- Name: PID-5; of its repetitions the ideographic one (XPN-8 `I`) is the name, the phonetic
  one (`P`) only when nothing else is there. CJK: family + given with no space; others
  "given family".
- Phone: PID-13 then PID-14, each repetition's XTN-1, else XTN-12, else XTN-6 + XTN-7; a
  candidate the contract would refuse (an e-mail address, an extension) is passed over.
- Death: PID-30 = `Y`. The contract's patient object has no "deceased"; what it allows, and
  what ends every call, is `contact_consent: false` (with `marketing_consent: false`), so a
  patient reported dead carries both on every event mapped from that message. A discharge
  additionally says `disposition: deceased` (mapping.py).
"""

import re

from services.hl7.hl7_message import REQUIRED_FIELD_MISSING, read_date
from shared.phones import is_valid_phone

# Han ideographs (all extensions), kana, Hangul, CJK radicals and compatibility ideographs.
_CJK = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003ffff]")
_PHONE_NOISE = re.compile(r"[()./]")
_EMAIL_USE = {"NET", "X.400", "INTERNET"}


def _matches_authority(repetition, authority):
    """CX-4 is an HD: its namespace id (HD-1) or universal id (HD-2) may be the one."""
    return authority in (repetition.text(4, 1), repetition.text(4, 2))


def _type_label(settings):
    label = "/".join(settings.mrn_type_codes)
    if settings.mrn_assigning_authority:
        label += f" assigned by {settings.mrn_assigning_authority}"
    return label


def _checked_mrn(segment, field, value):
    if len(value) > 64:
        raise segment.error(field, "the MRN is longer than 64 characters")
    return value


def mrn(pid, settings):
    """The MRN of a PID: the PID-3 repetition of a configured identifier type (and
    authority). AE naming PID-3 when there is none."""
    types = {code.strip().upper() for code in settings.mrn_type_codes}
    for repetition in pid.repetitions(3):
        if (
            repetition.text(1)
            and repetition.text(5).upper() in types
            and (
                not settings.mrn_assigning_authority
                or _matches_authority(repetition, settings.mrn_assigning_authority)
            )
        ):
            return _checked_mrn(pid, 3, repetition.text(1))
    raise pid.error(3, f"no identifier of type {_type_label(settings)}", REQUIRED_FIELD_MISSING)


def merged_mrn(mrg, pid, settings):
    """The retired MRN of an A40: the MRG-1 repetition chosen like PID-3's MRN. Feeds that
    leave the type out of MRG-1 (UCLH's Epic test feed sends `40800000^^^MRENTR`) are understood
    when the untyped identifier carries the assigning authority of the survivor's MRN: the
    same identifier namespace, so still chosen by meaning, not by position."""
    types = {code.strip().upper() for code in settings.mrn_type_codes}
    authority = settings.mrn_assigning_authority
    untyped = []
    for repetition in mrg.repetitions(1):
        if not repetition.text(1):
            continue
        if authority and not _matches_authority(repetition, authority):
            continue
        if repetition.text(5).upper() in types:
            return _checked_mrn(mrg, 1, repetition.text(1))
        if not repetition.text(5):
            untyped.append(repetition)
    survivor = next(
        (r for r in pid.repetitions(3) if r.text(1) and r.text(5).upper() in types), None
    )
    if survivor is not None and survivor.text(4, 1):
        for repetition in untyped:
            if repetition.text(4, 1) == survivor.text(4, 1):
                return _checked_mrn(mrg, 1, repetition.text(1))
    raise mrg.error(1, f"no identifier of type {_type_label(settings)}", REQUIRED_FIELD_MISSING)


def person_name(family, given):
    """陈 + 秀兰 -> 陈秀兰; MASSIE + JAMES -> JAMES MASSIE."""
    if _CJK.search(family + given):
        return (family + given).strip()
    return " ".join(part for part in (given, family) if part)


def _xpn_name(repetition):
    return person_name(repetition.text(1, 1), repetition.text(2))


def name(pid):
    """PID-5: the ideographic repetition, else the first that is not phonetic, else any."""
    repetitions = [r for r in pid.repetitions(5) if _xpn_name(r)]
    ranked = sorted(repetitions, key=lambda r: {"I": 0, "P": 2}.get(r.text(8).upper(), 1))
    if not ranked:
        raise pid.error(5, "no patient name", REQUIRED_FIELD_MISSING)
    chosen = _xpn_name(ranked[0])
    if len(chosen) > 100:
        raise pid.error(5, "the name is longer than 100 characters")
    return chosen


def doctor(segment, field):
    """(id, name) of an XCN field's first repetition (PV1-7, AIP-3); either may be ''."""
    return (
        segment.text(field, 1)[:64],
        person_name(segment.text(field, 2, 1), segment.text(field, 3))[:100],
    )


def _phone_text(text):
    text = " ".join(_PHONE_NOISE.sub(" ", text).split())
    if text and is_valid_phone(text):
        return text
    return None


def phone(pid):
    """The first usable number of PID-13, then PID-14."""
    for field in (13, 14):
        for r in pid.repetitions(field):
            if r.text(2).upper() in _EMAIL_USE or r.text(3).upper() in _EMAIL_USE:
                continue
            local = " ".join(part for part in (r.text(6), r.text(7)) if part) if r.text(7) else ""
            for candidate in (r.text(1), r.text(12), local):
                number = _phone_text(candidate)
                if number:
                    return number
    return None


def region(pid):
    """PID-11's district: XAD-9 (county/district), else the city XAD-3, else XAD-4."""
    for component in (9, 3, 4):
        value = pid.text(11, component)
        if value:
            return value if len(value) <= 100 else None
    return None


def died(pid):
    return pid.text(30).upper() == "Y"


def patient(pid, settings):
    """The contract's patient object from a PID segment."""
    person = {"mrn": mrn(pid, settings), "name": name(pid)}
    number = phone(pid)
    if number:
        person["phone"] = number
    sex = pid.text(8)
    if sex:
        # A code outside the table is "not stated", not an error: gender is optional.
        gender = settings.genders.get(sex.upper(), settings.genders.get(sex))
        if gender:
            person["gender"] = gender
    born = read_date(pid, 7)
    if born:
        person["birth_date"] = born.isoformat()
    district = region(pid)
    if district:
        person["region"] = district
    if died(pid):
        person["contact_consent"] = False
        person["marketing_consent"] = False
    return person
