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
from functools import lru_cache
from typing import Any

import pycountry

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
_HS_CHAPTERS = frozenset(f"{c:02d}" for c in range(1, 98) if c != 77)

# UN/LOCODEs and HS codes repeat across entries (a few ports, a few tariff lines), so
# their verdicts are cached. Only strings of the one length that can pass reach a
# cache, and each cache is bounded: hostile input evicts entries but cannot grow memory.
_CACHE_SIZE = 4096


def is_country(code: object) -> bool:
    return isinstance(code, str) and code in _COUNTRIES


@lru_cache(maxsize=_CACHE_SIZE)
def _locode(code: str) -> bool:
    return _LOCODE.fullmatch(code) is not None and code[:2] in _COUNTRIES


def is_locode(code: object) -> bool:
    return isinstance(code, str) and len(code) == 5 and _locode(code)


@lru_cache(maxsize=_CACHE_SIZE)
def _hs_code(code: str) -> bool:
    return _HS_CODE.fullmatch(code) is not None and code[:2] in _HS_CHAPTERS


def is_hs_code(code: object) -> bool:
    return isinstance(code, str) and len(code) == 6 and _hs_code(code)


def is_container(code: object) -> bool:
    if not isinstance(code, str) or _CONTAINER.fullmatch(code) is None:
        return False
    # python-stdnum's check digit on the first ten characters: its ``is_valid`` would
    # first clean and re-validate a form our stricter regex has already fixed (~10 us
    # against ~5 us a container).
    return bool(_iso6346().calc_check_digit(code[:10]) == code[10])


_STDNUM: list[Any] = []


def _iso6346() -> Any:
    """python-stdnum's ISO 6346 module, imported on first use: importing it costs about
    50 ms (it loads pydoc and ssl), which a certificate verification by ``customs``,
    with no container in sight, should not pay."""
    if not _STDNUM:
        from stdnum import iso6346

        _STDNUM.append(iso6346)
    return _STDNUM[0]


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


# Each check_* with the predicate it raises on, so check_each formats an item's path only
# for an item that fails.
_PREDICATES: dict[Callable[[str, object], None], Callable[[object], bool]] = {
    check_country: is_country,
    check_locode: is_locode,
    check_hs_code: is_hs_code,
    check_container: is_container,
    check_ucr: is_ucr,
}


def check_each(field: str, values: Iterable[object], check: Callable[[str, object], None]) -> None:
    """Apply ``check`` (one of the check_* functions) to each item, naming its index."""
    valid = _PREDICATES.get(check)
    for i, value in enumerate(values):
        if valid is None or not valid(value):
            check(f"{field}[{i}]", value)
