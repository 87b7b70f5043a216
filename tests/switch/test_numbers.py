"""SPEC §1: number clean-up, pattern lists and rewrite rules."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vos3k.switch.numbers import (
    EMPTY_PATTERNS,
    NO_REWRITES,
    Malformed,
    PatternList,
    RewriteRules,
    clean_number,
    normalise_callee,
    parse_patterns,
    parse_rewrites,
)
from vos3k.switch.reasons import EndReason

CALLEES = [
    ("+4412345678", "4412345678"),
    ("+44 (20) 1234-5678", "442012345678"),
    ("004412345678", "004412345678"),
    ("1.800.555.0100", "18005550100"),
    ("*31#123", "*31#123"),
    ("1", "1"),
    ("9" * 32, "9" * 32),
    ("+-1", "1"),
]


@pytest.mark.parametrize(("raw", "want"), CALLEES, ids=[f"spec1-{r}" for r, _ in CALLEES])
def test_normalise_callee(raw, want):
    assert normalise_callee(raw) == want


MALFORMED = ["", "+", "++44", "44a5", "9" * 33, "sip:44", "44/5", " - ", "4412345678;x"]


@pytest.mark.parametrize("raw", MALFORMED, ids=[f"spec1-bad-{i}" for i in range(len(MALFORMED))])
def test_malformed_callee_is_reason_4(raw):
    got = normalise_callee(raw)
    assert isinstance(got, Malformed)
    assert got.reason is EndReason.UNALLOCATED_NUMBER


def test_clean_only_strips_one_leading_plus():
    assert clean_number("++44") == "+44"
    assert clean_number("44+1") == "44+1"
    assert clean_number("alice") == "alice"


@given(st.text(max_size=40))
def test_normalise_callee_is_total(raw):
    got = normalise_callee(raw)
    assert isinstance(got, Malformed) or (1 <= len(got) <= 32 and set(got) <= set("0123456789*#"))


PATTERNS = [
    ("", "123", False),
    ("*", "123", True),
    ("*", "", True),
    ("123", "123", True),
    ("123", "1234", False),
    ("123*", "1234", True),
    ("123*", "123", True),
    ("123*", "12", False),
    ("911, 00*, 44*", "0044", True),
    ("911, 00*, 44*", "4412", True),
    ("911, 00*, 44*", "911", True),
    ("911, 00*, 44*", "9110", False),
    ("911, 00*, 44*", "0144", False),
    ("1*,123456*", "1999", True),
    ("12345*,123*", "1239", True),
    ("*31#", "*31#", True),
    ("*31#", "31#", False),
]


@pytest.mark.parametrize(
    ("text", "number", "hit"), PATTERNS, ids=[f"spec1-pat-{i}" for i in range(len(PATTERNS))]
)
def test_pattern_list(text, number, hit):
    patterns = parse_patterns(text)
    assert isinstance(patterns, PatternList)
    assert patterns.matches(number) is hit


def test_empty_pattern_list_is_falsy():
    assert not parse_patterns(" , ")
    assert not EMPTY_PATTERNS
    assert parse_patterns("1*")


@pytest.mark.parametrize("text", ["12 3", "1-2", "1:2", "+44"])
def test_bad_pattern_is_malformed(text):
    assert isinstance(parse_patterns(text), Malformed)


@given(st.lists(st.text("0123456789", min_size=1, max_size=6), max_size=8), st.text("0123456789"))
def test_prefix_patterns_agree_with_startswith(prefixes, number):
    patterns = parse_patterns(",".join(p + "*" for p in prefixes))
    assert patterns.matches(number) is any(number.startswith(p) for p in prefixes)


REWRITES = [
    ("00*:*", "004412345678", "4412345678"),
    ("00*:*", "4412345678", "4412345678"),
    ("*:9*", "4412345678", "94412345678"),
    ("*:9*", "", "9"),
    ("911:112", "911", "112"),
    ("911:112", "9110", "9110"),
    ("00*:*,*:77*", "004412345678", "4412345678"),
    ("*:77*", "4412345678", "774412345678"),
    ("0*:44*, 00*:*", "0012", "44012"),
    ("00*:*, 0*:44*", "0012", "12"),
    ("00*:*, 0*:44*", "0712", "44712"),
    ("123:*31#", "123", "*31#"),
    ("44*:T1*", "4412", "T112"),
    ("1*:", "155", ""),
]


@pytest.mark.parametrize(
    ("text", "number", "want"), REWRITES, ids=[f"spec1-rw-{i}" for i in range(len(REWRITES))]
)
def test_rewrite(text, number, want):
    rules = parse_rewrites(text)
    assert isinstance(rules, RewriteRules)
    assert rules.apply(number) == want


def test_no_rewrites():
    assert NO_REWRITES.apply("123") == "123"
    assert parse_rewrites("") == RewriteRules("", ())


@pytest.mark.parametrize("text", ["00*", "00*;*", ":1", "1:2:3", "1 2:3", "1:2-3"])
def test_bad_rewrite_is_malformed(text):
    assert isinstance(parse_rewrites(text), Malformed)


@given(st.text(max_size=30))
def test_parsers_are_total(text):
    assert isinstance(parse_patterns(text), PatternList | Malformed)
    assert isinstance(parse_rewrites(text), RewriteRules | Malformed)
