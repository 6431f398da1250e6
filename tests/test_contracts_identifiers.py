"""Common rule 8: identifier syntax (ISO 3166-1, UN/LOCODE, HS, ISO 6346, UCR)."""

from __future__ import annotations

import re
from collections.abc import Callable
from string import ascii_uppercase, digits
from typing import Any

import pycountry
import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import iso6346

from contracts import Rejection
from contracts.identifiers import (
    _hs_code,
    _locode,
    check_container,
    check_each,
    check_hs_code,
    is_container,
    is_country,
    is_hs_code,
    is_locode,
    is_ucr,
)
from ledger.genesis import is_country as ledger_is_country
from tests.samples import container

COUNTRIES = sorted(c.alpha_2 for c in pycountry.countries)
UPPER2 = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2)


@given(UPPER2)
def test_country_agrees_with_pycountry_and_ledger(code: str) -> None:
    assert is_country(code) == (pycountry.countries.get(alpha_2=code) is not None)
    assert is_country(code) == ledger_is_country(code)


@pytest.mark.parametrize("code", ["de", "DEU", "UK", "EU", "XX", "", " DE", 49, None])
def test_country_rejects(code: object) -> None:
    assert not is_country(code)


@given(
    st.sampled_from(COUNTRIES),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ23456789", min_size=3, max_size=3),
)
def test_locode_is_country_plus_three(country: str, rest: str) -> None:
    assert is_locode(country + rest)


@pytest.mark.parametrize(
    "code", ["DEHA0", "DEHA1", "XXHAM", "deham", "DEHAMB", "DEHA", "DE HAM", "DEHAM\n"]
)
def test_locode_rejects(code: str) -> None:
    assert not is_locode(code)


@given(st.integers(min_value=0, max_value=999_999))
def test_hs_code_chapters(number: int) -> None:
    code = f"{number:06d}"
    chapter = number // 10_000
    assert is_hs_code(code) == (1 <= chapter <= 97 and chapter != 77)


@pytest.mark.parametrize(
    "code",
    ["85171", "8517120", "8517.1", "\uff18\uff15\uff11\uff17\uff11\uff12", "851712\n", 851712],
)
def test_hs_code_rejects_non_six_ascii_digits(code: object) -> None:
    assert not is_hs_code(code)


@given(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3),
    st.sampled_from("UJZR"),
    st.integers(min_value=0, max_value=999_999),
)
def test_container_check_digit(owner: str, category: str, serial: int) -> None:
    head = f"{owner}{category}{serial:06d}"
    good = head + iso6346.calc_check_digit(head)
    assert is_container(good)
    for digit in "0123456789":
        if digit != good[-1]:
            assert not is_container(head + digit)


def test_container_needs_canonical_form() -> None:
    good = container("CSQ", 305438)
    assert good == "CSQU3054383"  # the ISO 6346 example in python-stdnum's docs
    assert is_container(good)
    for variant in (good.lower(), "CSQU 305438 3", "CSQX3054383", " " + good):
        assert not is_container(variant)


@pytest.mark.parametrize("ucr", ["6CN1", "9DE-2026-0001", "0US" + "A" * 32])
def test_ucr_accepts(ucr: str) -> None:
    assert is_ucr(ucr)


@pytest.mark.parametrize("ucr", ["CN1", "6XX1", "6CN", "6cn1", "6CN_1", "6CN" + "A" * 33, "66CN1"])
def test_ucr_rejects(ucr: str) -> None:
    assert not is_ucr(ucr)


def test_checks_raise_invalid_identifier_naming_the_field() -> None:
    with pytest.raises(Rejection) as caught:
        check_hs_code("body.hs_codes[3]", "770000")
    assert caught.value.code == "invalid_identifier"
    assert "body.hs_codes[3]" in caught.value.message
    with pytest.raises(Rejection, match="ISO 6346"):
        check_container("body.containers[0]", "MSCU0000013")


def _stdnum_container(code: str) -> bool:
    """The reference verdict: our canonical form, then python-stdnum's check digit."""
    return re.fullmatch(r"[A-Z]{3}[UJZR][0-9]{7}", code) is not None and iso6346.is_valid(code)


def test_container_check_digit_agrees_with_stdnum_position_by_position() -> None:
    # The check digit is a weighted sum over positions: agreeing on every character at
    # every position, with every check digit, pins down every weight and value.
    base = "CSQU305438"
    allowed = [ascii_uppercase] * 3 + ["UJZR"] + [digits] * 6
    for position, chars in enumerate(allowed):
        for char in chars:
            head = base[:position] + char + base[position + 1 :]
            for check_digit in digits:
                code = head + check_digit
                assert is_container(code) == _stdnum_container(code), code


@given(st.text(alphabet=ascii_uppercase + digits + "ujzr -\u00c9", min_size=9, max_size=13))
def test_container_agrees_with_stdnum_on_any_string(code: str) -> None:
    assert is_container(code) == _stdnum_container(code)


@pytest.mark.parametrize("code", [None, 3054383, b"CSQU3054383", ["CSQU3054383"]])
def test_container_rejects_non_strings(code: object) -> None:
    assert not is_container(code)


@pytest.mark.parametrize(
    ("predicate", "cache", "good", "bad"),
    [(is_locode, _locode, "DEHAM", "DEHA1"), (is_hs_code, _hs_code, "851712", "770000")],
)
def test_cached_predicates_are_bounded_and_keep_their_verdicts(
    predicate: Callable[[object], bool],
    cache: Any,
    good: str,
    bad: str,
) -> None:
    for _ in range(2):  # the second round answers from the cache
        assert predicate(good) and not predicate(bad)
    # Only strings of the one passing length are cached: a hostile long string is not.
    before = cache.cache_info().currsize
    assert not predicate(good * 1000) and not predicate(good[:-1])
    assert cache.cache_info().currsize == before
    # Distinct input evicts old verdicts but never grows the cache past its bound.
    maxsize = cache.cache_info().maxsize
    for n in range(maxsize + 100):
        predicate(f"{n:0{len(good)}d}"[-len(good) :])
    assert cache.cache_info().currsize <= maxsize
    assert predicate(good) and not predicate(bad)


def test_check_each_names_the_first_failing_index() -> None:
    with pytest.raises(Rejection) as caught:
        check_each("body.hs_codes", ["851712", "010121", "770000", "99"], check_hs_code)
    assert caught.value.code == "invalid_identifier"
    assert caught.value.message == (
        "body.hs_codes[2]: '770000' is not an HS code (6 digits, chapter 01-97 except 77)"
    )
    check_each("body.hs_codes", ["851712", "010121"], check_hs_code)  # all pass: no error
