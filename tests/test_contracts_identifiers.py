"""Common rule 8: identifier syntax (ISO 3166-1, UN/LOCODE, HS, ISO 6346, UCR)."""

from __future__ import annotations

import pycountry
import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import iso6346

from contracts import Rejection
from contracts.identifiers import (
    check_container,
    check_hs_code,
    is_container,
    is_country,
    is_hs_code,
    is_locode,
    is_ucr,
)
from contracts.samples import container
from ledger.genesis import is_country as ledger_is_country

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
