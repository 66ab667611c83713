"""Phone rules: which text is a phone number, and the key one person's phone is found by."""

import re

# Digits, an optional leading +, spaces and dashes (docs/EVENTS.md).
PHONE_PATTERN = re.compile(r"^\+?[0-9][0-9 \-]*$")

# The hospital's country calling code (default CN). "+86 139 0000 1111", "0086 13900001111"
# and "139-0000-1111" are one phone: the key drops the home country prefix of an
# international form; numbers of other countries keep every digit.
HOME_COUNTRY_CODE = "86"


def phone_digits(phone: str | None, country_code: str = HOME_COUNTRY_CODE) -> str:
    """The phone's key: its digits, national form for home numbers. It links a prospect to
    the patient who later visits with the same phone, and finds patients by phone."""
    text = (phone or "").strip()
    digits = re.sub(r"\D", "", text)
    for prefix in ("+" + country_code, "00" + country_code):
        if text.startswith(prefix[0]) and digits.startswith(prefix.lstrip("+")):
            return digits[len(prefix.lstrip("+")) :]
    return digits


def is_valid_phone(text: str) -> bool:
    """The contract's rule for a phone: PHONE_PATTERN, and 3 to 20 digits in its key."""
    return bool(PHONE_PATTERN.match(text)) and 3 <= len(phone_digits(text)) <= 20
