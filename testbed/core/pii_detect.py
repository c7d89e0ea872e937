"""Spot columns that likely hold personal data, by name and by a sample of values, so an unmasked one is refused.

Both checks are heuristics that err on the side of refusing: a column they flag wrongly is let through by
naming it in `pii.allow`. Neither returns a value, only why the column was flagged, so no message built from
them can echo personal data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Name tokens (a column name split at underscores, digits and camelCase humps) that mark personal data.
_NAME_TOKENS: dict[str, str] = {
    **dict.fromkeys(("email", "mail", "emailaddress"), "an email address"),
    **dict.fromkeys(("phone", "telephone", "tel", "mobile", "cellphone", "fax", "msisdn"), "a phone number"),
    **dict.fromkeys(("address", "street", "postcode", "postal", "zip", "zipcode"), "a postal address"),
    **dict.fromkeys(("dob", "birth", "birthday", "birthdate"), "a date of birth"),
    **dict.fromkeys(("ssn", "passport", "nino"), "a national id"),
    **dict.fromkeys(("iban", "card", "creditcard"), "a bank or card number"),
    **dict.fromkeys(("firstname", "lastname", "fullname", "surname", "forename", "username"), "a person's name"),
}
# "name" alone marks a person only in users/: items/ and events/ often carry product or campaign names.
_PERSON_NAME_TOKEN = "name"

_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_PHONE_SHAPE = re.compile(r"\+?[0-9(][0-9 ().-]{5,}[0-9]")
_PHONE_GROUPED = re.compile(r"[0-9]{3}[-.][0-9]{3,4}[-.][0-9]{4}")  # 555-123-4567, not a date (4-2-2)
_PHONE_DIGITS = (7, 15)  # E.164 allows at most 15 digits
MATCH_SHARE = 0.5  # a column is flagged when at least this share of its sampled values look like PII


def name_tokens(column: str) -> list[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", column)
    return [t for t in re.split(r"[^a-z]+", spaced.lower()) if t]


def pii_by_name(column: str, dataset: str) -> str | None:
    """What kind of personal data the column's name suggests, or None."""
    tokens = name_tokens(column)
    for token in tokens:
        if token in _NAME_TOKENS:
            return _NAME_TOKENS[token]
    if dataset == "users" and _PERSON_NAME_TOKEN in tokens:
        return "a person's name"
    return None


def looks_like_email(value: str) -> bool:
    return _EMAIL.fullmatch(value.strip()) is not None


def looks_like_phone(value: str) -> bool:
    text = value.strip()
    if not _PHONE_SHAPE.fullmatch(text):
        return False
    digits = sum(c.isdigit() for c in text)
    separated = text.startswith("+") or "(" in text or " " in text or _PHONE_GROUPED.fullmatch(text) is not None
    return _PHONE_DIGITS[0] <= digits <= _PHONE_DIGITS[1] and separated


def pii_by_values(values: Iterable[str | None]) -> str | None:
    """What kind of personal data most sampled values look like (emails, phone numbers), or None."""
    sample = [v for v in values if v]
    if not sample:
        return None
    emails = sum(looks_like_email(v) for v in sample)
    phones = sum(looks_like_phone(v) for v in sample)
    if emails + phones < MATCH_SHARE * len(sample):
        return None
    return "email addresses" if emails >= phones else "phone numbers"
