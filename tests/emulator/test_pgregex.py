"""PostgreSQL's regular expressions (the dialect of DIALS' `__regex`) in Python.

Expectations follow the PostgreSQL documentation, 9.7.3 "POSIX Regular Expressions"
(https://www.postgresql.org/docs/current/functions-matching.html) and its lexer
(postgres/postgres: src/backend/regex/regc_lex.c, regcomp.c); docs/emulator.md "Regex
dialect".
"""

from __future__ import annotations

import pytest

from dialsflow_emulator.dials.pgregex import PgRegexError, Unsupported, compile_are

ZERO_BIAS = "/ZeroBias/Run2024C-PromptReco-v1/DQMIO"
EXPRESS = "/StreamExpress/Run2024C-Express-v1/DQMIO"
DISK = "PixelPhase1/Tracks/PXForward/charge_PXDisk_+1"
LAYER = "PixelPhase1/Tracks/PXBarrel/charge_PXLayer_1"


def matches(pattern: str, text: str) -> bool:
    """`text ~ pattern`: an unanchored search."""
    return compile_are(pattern).search(text) is not None


@pytest.mark.parametrize("pattern,text,expected", [
    # constraint escapes: \y \m \M \Y are about words; \b is a backspace, \B a backslash
    (r"\yZeroBias\y", ZERO_BIAS, True),
    (r"\yZero\y", ZERO_BIAS, False),
    (r"\mZero", ZERO_BIAS, True),
    (r"\mBias", ZERO_BIAS, False),
    (r"Bias\M", ZERO_BIAS, True),
    (r"Zero\M", ZERO_BIAS, False),
    (r"Zero\YBias", ZERO_BIAS, True),
    (r"\bZeroBias", ZERO_BIAS, False),
    (r"\bZeroBias", "x\bZeroBias", True),
    (r"a\Bb", "a\\b", True),
    (r"[[:<:]]Run", ZERO_BIAS, True),
    (r"2024[[:>:]]", ZERO_BIAS, False),
    (r"\AZero", ZERO_BIAS, False),
    (r"\A/Zero", ZERO_BIAS, True),
    (r"DQMIO\Z", ZERO_BIAS, True),
    (r"DQMIO$", ZERO_BIAS + "\n", False),  # no special trailing newline, unlike Python's $
    # POSIX classes and class shorthands (C locale)
    (r"Run[[:digit:]]{4}[[:upper:]]-", ZERO_BIAS, True),
    (r"[[:alpha:]]+_PXDisk_\+1", DISK, True),
    (r"[[:alnum:]]_[[:digit:]]", DISK, False),
    (r"[[:space:]]", "a b", True),
    (r"[[:punct:]]", "abc", False),
    (r"[[:xdigit:]]{6}", "c0ffee", True),
    (r"[[:lower:]]{6}", "charge", True),
    (r"\d\d\d\d\w", ZERO_BIAS, True),
    (r"_\D", DISK, True),
    (r"\s", ZERO_BIAS, False),
    (r"[\d+]1$", DISK, True),
    (r"[^\w/]", LAYER, False),
    (r"[\W]", LAYER, True),
    # plain syntax: unanchored, case-sensitive, '+' and '{' as PostgreSQL reads them
    ("ZeroBias", ZERO_BIAS, True),
    ("zerobias", ZERO_BIAS, False),
    ("charge_PXDisk_+1", DISK, False),
    (r"charge_PXDisk_\+1", DISK, True),
    ("x{,3}", "x{,3}", True),  # '{' not followed by a digit is an ordinary character
    ("a{2,3}b", "xaab", True),
    ("(Zero|Stream)(Bias|Express)", EXPRESS, True),
    ("(?:Prompt|Express)Reco", ZERO_BIAS, True),
    ("Zero(?=Bias)", ZERO_BIAS, True),
    ("Zero(?!Bias)", ZERO_BIAS, False),
    ("(?<=/)Zero", ZERO_BIAS, True),
    ("(?<!/)Zero", ZERO_BIAS, False),
    (r"(B)ar\1", "xBarB", True),
    (r"(B)ar\1", "xBarb", False),
    ("PXLayer_.*?1", LAYER, True),
    # metasyntax: embedded options at the start, directors, comments, expanded syntax
    ("(?i)zerobias", ZERO_BIAS, True),
    ("(?c)zerobias", ZERO_BIAS, False),
    ("***=charge_PXDisk_+1", DISK, True),
    ("***=.", ZERO_BIAS, False),
    ("***:Zero", ZERO_BIAS, True),
    ("(?q)[", "a[b", True),
    ("Zer(?#a comment)o", ZERO_BIAS, True),
    ("Zero(?#c)+Bias", "ZerooBias", True),  # the quantifier reaches over the comment
    ("(?x) Zero  Bias  # words", ZERO_BIAS, True),
    (r"(?x) Zero \  Bias", "Zero Bias", True),
    # character-entry escapes
    (r"\x5a\u0065ro", ZERO_BIAS, True),
    (r"\132ero", ZERO_BIAS, True),  # octal
    (r"\U0000005Aero", ZERO_BIAS, True),
    (r"\cJ", "a\nb", True),
])
def test_postgresql_semantics(pattern: str, text: str, expected: bool) -> None:
    assert matches(pattern, text) is expected


@pytest.mark.parametrize("pattern", [
    "(?P<x>Zero)",  # Python's named groups
    "Z(?P<x>ero)",
    "(?<name>Zero)",
    "Zero(?i)Bias",  # embedded options only at the very start
    "(?>Zero)",  # atomic group
    "a*+",  # possessive quantifier = a quantifier after a quantifier
    "a**",
    "*a",  # nothing to quantify
    "a|*b",
    "^*",  # a constraint cannot be quantified
    r"\y+",
    "(?=a)*",
    r"\z", r"\G", r"\K", r"\p{L}", r"\h", r"\N", r"\R", r"\X", r"\k<x>", r"\g1",
    r"\u12", r"\U1234",  # exactly four and exactly eight hex digits
    "\\",
    "(Zero", "Zero)", "[Zero", "x{3", "x{3,a}", "x{256}", "x{3,2}",
    "[z-a]", "[a-c-e]", "[[:digit:]-z]", "[[:nope:]]", r"[\y]", r"[a\1]",
    r"\1(a)", r"(a)\2", r"(a\1)", "(a){0}\\1", r"(a)(?=\1)",
    "***?", "***x", "(?z)x", "(?i",
])
def test_what_postgresql_rejects_is_an_error(pattern: str) -> None:
    with pytest.raises(PgRegexError, match=r"^invalid regular expression: "):
        compile_are(pattern)


@pytest.mark.parametrize("pattern", [
    "(?<=/+)Zero",  # PostgreSQL allows variable-length lookbehind; Python cannot run it
    "(?b)Zero",  # basic and extended REs chosen by an embedded option
    "(?e)Zero",
    "[[.hyphen.]]",  # named collating elements
])
def test_valid_postgresql_that_python_cannot_run_is_unsupported(pattern: str) -> None:
    with pytest.raises(Unsupported):
        compile_are(pattern)


def test_back_references_and_octal_escapes_follow_the_digit_heuristic() -> None:
    # one digit: a back reference; more digits: a back reference only if that group exists
    assert matches(r"(a)\1", "aa")
    assert matches(r"(a)\12", "a\n")  # no group 12: octal 012
    assert matches(r"(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)\12", "abcdefghijkll")
    assert matches(r"\0", "\x00")
    assert matches(r"\1010", "A0")  # at most three octal digits
    with pytest.raises(PgRegexError):
        compile_are(r"\89")  # neither a back reference nor octal


def test_parentheses_inside_lookaround_do_not_capture() -> None:
    assert matches(r"(?=(a))(b)?a\1", "aa") is False  # \1 is (b), which did not match
    assert matches(r"(?=(a))(a)\1", "aa")


def test_bracket_edge_cases() -> None:
    assert matches("[]a]", "]")
    assert matches("[^]a]", "b") and not matches("[^]a]", "]")
    assert matches("[a-]", "-") and matches("[-a]", "-")
    assert matches("[!--]", ",")  # a range ending in '-'
    assert matches("[[.a.]-c]", "b")
    assert matches("[[=e=]]", "e")
    assert matches(r"[\]]", "]")
    assert matches("[(]", "(") and matches("[*]", "*")


def test_patterns_are_cached() -> None:
    assert compile_are(r"\yZeroBias\y") is compile_are(r"\yZeroBias\y")
