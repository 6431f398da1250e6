"""Identifier syntax (common rule 8): countries, UN/LOCODEs, HS codes, containers, UCRs.

- country: an assigned ISO 3166-1 alpha-2 code (pycountry's ISO 3166-1 table);
- UN/LOCODE: a country code followed by 3 of [A-Z2-9] (UNECE Recommendation 16);
- HS code: 6 digits whose chapter (first two) is 01..97 except the reserved 77;
- container: ISO 6346 owner code, category U/J/Z/R, 6-digit serial and a correct check
  digit (python-stdnum), written without spaces in upper case;
- UCR: a digit, a country code in characters 2-3, then 1..32 of [A-Z0-9-] (WCO UCR).
Each ``check_*`` raises Rejection(``invalid_identifier``) naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import pycountry
from stdnum import iso6346

from contracts.errors import Rejection

__all__ = [
    "check_container",
    "check_country",
    "check_each",
    "check_hs_code",
    "check_locode",
    "check_ucr",
    "is_container",
    "is_country",
    "is_hs_code",
    "is_locode",
    "is_ucr",
]

# Built once: a set lookup is ~50x cheaper than pycountry's per-call search.
_COUNTRIES = frozenset(str(c.alpha_2) for c in pycountry.countries)
_LOCODE = re.compile(r"[A-Z]{2}[A-Z2-9]{3}")
_HS_CODE = re.compile(r"[0-9]{6}")
_CONTAINER = re.compile(r"[A-Z]{3}[UJZR][0-9]{7}")
_UCR = re.compile(r"[0-9][A-Z]{2}[A-Z0-9-]{1,32}")


def is_country(code: object) -> bool:
    return isinstance(code, str) and code in _COUNTRIES


def is_locode(code: object) -> bool:
    return isinstance(code, str) and _LOCODE.fullmatch(code) is not None and code[:2] in _COUNTRIES


def is_hs_code(code: object) -> bool:
    if not isinstance(code, str) or _HS_CODE.fullmatch(code) is None:
        return False
    chapter = int(code[:2])
    return 1 <= chapter <= 97 and chapter != 77


def is_container(code: object) -> bool:
    return (
        isinstance(code, str)
        and _CONTAINER.fullmatch(code) is not None
        and bool(iso6346.is_valid(code))
    )


def is_ucr(code: object) -> bool:
    return isinstance(code, str) and _UCR.fullmatch(code) is not None and code[1:3] in _COUNTRIES


def _fail(field: str, value: object, what: str) -> Rejection:
    return Rejection("invalid_identifier", f"{field}: {value!r:.80} is not {what}")


def check_country(field: str, value: object) -> None:
    if not is_country(value):
        raise _fail(field, value, "an ISO 3166-1 alpha-2 country code")


def check_locode(field: str, value: object) -> None:
    if not is_locode(value):
        raise _fail(field, value, "a UN/LOCODE (country code + 3 of A-Z, 2-9)")


def check_hs_code(field: str, value: object) -> None:
    if not is_hs_code(value):
        raise _fail(field, value, "an HS code (6 digits, chapter 01-97 except 77)")


def check_container(field: str, value: object) -> None:
    if not is_container(value):
        raise _fail(field, value, "an ISO 6346 container number with a correct check digit")


def check_ucr(field: str, value: object) -> None:
    if not is_ucr(value):
        raise _fail(field, value, "a UCR (digit, country code, 1-32 of A-Z 0-9 -)")


def check_each(field: str, values: Iterable[object], check: Callable[[str, object], None]) -> None:
    """Apply ``check`` (one of the check_* functions) to each item, naming its index."""
    for i, value in enumerate(values):
        check(f"{field}[{i}]", value)
