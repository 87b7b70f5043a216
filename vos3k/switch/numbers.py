"""E.164 number clean-up, number pattern lists and prefix rewrite rules (SPEC §1)."""

from __future__ import annotations

import re

from attrs import frozen

from vos3k.switch.reasons import EndReason

# SPEC §1: a leading "+" and "-.() " anywhere are removed before anything else.
_DECORATION = str.maketrans("", "", "-.() ")
# SPEC §1: a callee is 1-32 characters of 0-9 * #.
_CALLEE = re.compile(r"[0-9*#]{1,32}")
# What a pattern or replacement may contain: dial characters, plus letters because
# rewrites may add routing tags (SPEC §1).
_PATTERN_ITEM = re.compile(r"[0-9A-Za-z*#]+")
_REPLACEMENT = re.compile(r"[0-9A-Za-z*#]*")


@frozen
class Malformed:
    """Bad input as a value: why, and the end reason a call gets for it."""

    detail: str
    reason: EndReason = EndReason.UNALLOCATED_NUMBER


def clean_number(number: str) -> str:
    """SPEC §1: drop one leading "+" and every "-", ".", "(", ")" and space."""
    stripped = number.translate(_DECORATION)
    return stripped[1:] if stripped.startswith("+") else stripped


def normalise_callee(number: str) -> str | Malformed:
    """SPEC §1: the cleaned callee, or Malformed (end reason 4) unless 1-32 of 0-9*#."""
    cleaned = clean_number(number)
    if _CALLEE.fullmatch(cleaned) is None:
        return Malformed(f"callee {number!r} is not 1-32 characters of 0-9*#")
    return cleaned


def _split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


@frozen
class PatternList:
    """A compiled comma list of patterns: `P*` starts with P, `*` all, else exact."""

    text: str
    match_all: bool
    exact: frozenset[str]
    prefixes: frozenset[str]
    prefix_lengths: tuple[int, ...]  # distinct lengths, so a match is a few set probes

    def matches(self, number: str) -> bool:
        """Whether `number` is in the list."""
        if self.match_all or number in self.exact:
            return True
        prefixes = self.prefixes
        return any(number[:n] in prefixes for n in self.prefix_lengths if n <= len(number))

    def __bool__(self) -> bool:
        return self.match_all or bool(self.exact) or bool(self.prefixes)


EMPTY_PATTERNS = PatternList("", False, frozenset(), frozenset(), ())


def parse_patterns(text: str) -> PatternList | Malformed:
    """Compile a pattern list (SPEC §1); empty text is the empty list."""
    exact: set[str] = set()
    prefixes: set[str] = set()
    match_all = False
    for item in _split_list(text):
        if _PATTERN_ITEM.fullmatch(item) is None:
            return Malformed(f"pattern {item!r} may hold only 0-9, letters, * and #")
        if item == "*":
            match_all = True
        elif item.endswith("*"):
            prefixes.add(item[:-1])
        else:
            exact.add(item)
    lengths = tuple(sorted({len(p) for p in prefixes}))
    return PatternList(text, match_all, frozenset(exact), frozenset(prefixes), lengths)


@frozen
class RewriteRule:
    """One `PATTERN:REPLACEMENT`: a trailing `*` captures the rest of the number."""

    prefix: str  # the pattern without its trailing `*` when `captures`
    captures: bool
    replacement: str

    def apply(self, number: str) -> str | None:
        """The rewritten number, or None when the pattern does not match."""
        if self.captures:
            if not number.startswith(self.prefix):
                return None
            # SPEC §1: a `*` in the replacement inserts the captured rest.
            return self.replacement.replace("*", number[len(self.prefix) :])
        # An exact pattern captures nothing, so its replacement is taken literally
        # (a `*` there is a dial character, e.g. `123:*31#`).
        return self.replacement if number == self.prefix else None


@frozen
class RewriteRules:
    """A compiled comma list of rewrite rules; the first matching rule applies, once."""

    text: str
    rules: tuple[RewriteRule, ...]

    def apply(self, number: str) -> str:
        """SPEC §1: `number` rewritten by the first matching rule, else unchanged."""
        for rule in self.rules:
            result = rule.apply(number)
            if result is not None:
                return result
        return number


NO_REWRITES = RewriteRules("", ())


def parse_rewrites(text: str) -> RewriteRules | Malformed:
    """Compile `PATTERN:REPLACEMENT,...` (SPEC §1, e.g. `00*:*,*:9*,911:112`)."""
    rules = []
    for item in _split_list(text):
        pattern, colon, replacement = item.partition(":")
        pattern, replacement = pattern.strip(), replacement.strip()
        if not colon or _PATTERN_ITEM.fullmatch(pattern) is None:
            return Malformed(f"rewrite {item!r} is not PATTERN:REPLACEMENT")
        if _REPLACEMENT.fullmatch(replacement) is None:
            return Malformed(f"rewrite {item!r}: replacement may hold only 0-9, letters, * and #")
        captures = pattern.endswith("*")
        rules.append(RewriteRule(pattern[:-1] if captures else pattern, captures, replacement))
    return RewriteRules(text, tuple(rules))
