"""PostgreSQL's regular expressions (AREs) translated to Python's `re`, for DIALS' `__regex`.

DIALS filters with Django's `__regex` lookup, which PostgreSQL runs as `column ~ pattern`
(docs/reference/dials.md §8.3; django: db/backends/postgresql/base.py `operators`). So a
pattern means what PostgreSQL's Advanced Regular Expressions say, not what Python's `re`
says: `\\y` is a word boundary and `\\b` a backspace, `[[:digit:]]` is a class, `(?P<x>...)`
is an error. Rules from https://www.postgresql.org/docs/current/functions-matching.html
(9.7.3 "POSIX Regular Expressions": atoms, quantifiers, constraints, bracket expressions,
escapes, metasyntax) and the lexer it documents, postgres/postgres:
src/backend/regex/regc_lex.c (escapes, digits, `***` directors, embedded options) and
regcomp.c `parseqatom` (what may be quantified, back references).

`translate()` parses the whole pattern as PostgreSQL does and writes an equivalent Python
pattern; whatever PostgreSQL rejects raises `PgRegexError` (PostgreSQL: "invalid regular
expression: ...", SQLSTATE 2201B, a DataError that DIALS answers as an HTML 500). Valid
PostgreSQL that Python's engine cannot run (a variable-length lookbehind, a BRE or ERE chosen
by `(?b)`/`(?e)`, a named collating element) raises `Unsupported`: the emulator says so
instead of guessing.

Matching is a search (`~` is unanchored), and `~` only asks whether a match exists, so
PostgreSQL's longest-leftmost rule and Python's first-match rule agree on every answer.
Character classes are those of the C locale (ASCII), which covers the ASCII names DIALS holds
(datasets, MEs, LFNs); a UTF-8 database would also count non-ASCII letters as `alpha`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["PgRegexError", "Unsupported", "compile_are", "translate"]


class PgRegexError(ValueError):
    """PostgreSQL rejects the pattern (`ERROR: invalid regular expression: <reason>`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid regular expression: {reason}")
        self.reason = reason


class Unsupported(ValueError):
    """Valid in PostgreSQL, but not something this translation can run in Python."""


# regerror() texts of the errors (src/include/regex/regerrs.h)
BADRPT = "quantifier operand invalid"
EESCAPE = "invalid escape \\ sequence"
EPAREN = "parentheses () not balanced"
EBRACK = "brackets [] not balanced"
EBRACE = "braces {} not balanced"
BADBR = "invalid repetition count(s)"
ECTYPE = "invalid character class"
ERANGE = "invalid character range"
ESUBREG = "invalid backreference number"
BADOPT = "invalid embedded option"
BADPAT = "invalid regular expression"
ECOLLATE = "invalid collating element"

DUPMAX = 255  # largest bound in {m,n}
CHR_MAX = 0x7FFFFFFE  # largest character value an escape may name
ASCII_SPACE = " \t\n\r\f\v"

#: POSIX classes in the C locale, as Python character-class fragments.
CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "blank": " \\t", "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~",
    "punct": "!-/:-@\\[-`{-~", "space": " \\t\\n\\r\\f\\v", "upper": "A-Z",
    "xdigit": "0-9A-Fa-f", "word": "0-9A-Za-z_", "ascii": "\\x00-\\x7f",
}
SHORTHANDS = {"d": "digit", "s": "space", "w": "word"}  # \D \S \W are the complements
WORD = CLASSES["word"]
NEVER = "[^\\x00-\\U0010ffff]"  # an atom that matches nothing (a character no text holds)
#: Word-boundary constraints: \m, \M, \y, \Y and [[:<:]], [[:>:]].
START_OF_WORD = f"(?<![{WORD}])(?=[{WORD}])"
END_OF_WORD = f"(?<=[{WORD}])(?![{WORD}])"
BOUNDARY = f"(?:{START_OF_WORD}|{END_OF_WORD})"
NOT_BOUNDARY = f"(?:(?<=[{WORD}])(?=[{WORD}])|(?<![{WORD}])(?![{WORD}]))"
CONSTRAINTS = {"A": "\\A", "Z": "\\Z", "m": START_OF_WORD, "M": END_OF_WORD, "y": BOUNDARY,
               "Y": NOT_BOUNDARY}
CHARACTER_ENTRY = {"a": "\a", "b": "\b", "B": "\\", "e": "\x1b", "f": "\f", "n": "\n",
                   "r": "\r", "t": "\t", "v": "\v"}


def _literal(code: int) -> str:
    """One character (by code) as an ordinary character of a Python pattern, in or out of
    brackets; NEVER for a code no text can hold."""
    if code > 0x10FFFF:
        return NEVER
    ch = chr(code)
    return re.escape(ch) if ch.isascii() and ch.isprintable() else f"\\U{code:08x}"


@dataclass
class _Options:
    icase: bool = False
    expanded: bool = False
    nlstop: bool = False  # '.' and [^...] stop at newlines (options n, m, p)
    nlanch: bool = False  # ^ and $ also match at newlines (options n, m, w)


@dataclass
class _Item:
    """One piece of a branch: Python text, and whether a quantifier may follow it."""

    text: str
    quantifiable: bool
    group: int | None = None  # capturing group number, for {0} cancelling it


@dataclass
class _Parser:
    """Recursive descent over one ARE, writing Python as it goes (regcomp.c parse,
    parsebranch, parseqatom, bracket; regc_lex.c for the tokens)."""

    src: str
    opts: _Options
    pos: int = 0
    opened: int = 0  # capturing groups opened so far (PostgreSQL's nsubexp)
    closed: set[int] = field(default_factory=set)  # groups a back reference may name

    # -- scanning -------------------------------------------------------------------------

    def at_end(self) -> bool:
        return self.pos >= len(self.src)

    def peek(self, k: int = 0) -> str:
        i = self.pos + k
        return self.src[i] if i < len(self.src) else ""

    def take(self) -> str:
        ch = self.src[self.pos]
        self.pos += 1
        return ch

    def skip_blanks(self) -> None:
        """Expanded syntax (`(?x)`): white space and #-comments outside brackets are ignored."""
        if not self.opts.expanded:
            return
        while not self.at_end():
            if self.peek() in ASCII_SPACE:
                self.pos += 1
            elif self.peek() == "#":
                while not self.at_end() and self.peek() != "\n":
                    self.pos += 1
            else:
                return

    # -- structure --------------------------------------------------------------------------

    def regex(self, lookaround: bool = False, nested: bool = False) -> str:
        """Branches separated by '|', up to (and including) ')' when nested, else to the
        end."""
        branches = [self.branch(lookaround)]
        while True:
            self.skip_blanks()
            if self.at_end():
                if nested:
                    raise PgRegexError(EPAREN)
                return "|".join(branches)
            if self.take() == ")":
                if not nested:
                    raise PgRegexError(EPAREN)
                return "|".join(branches)
            branches.append(self.branch(lookaround))  # after '|'

    def branch(self, lookaround: bool) -> str:
        items: list[_Item] = []
        while True:
            self.skip_blanks()
            if self.at_end() or self.peek() in "|)":
                return "".join(i.text for i in items)
            ch = self.peek()
            if ch in "*+?" or (ch == "{" and self._bound_follows()):
                if not items or not items[-1].quantifiable:
                    raise PgRegexError(BADRPT)  # at the start, after a constraint or quantifier
                items[-1] = self.quantify(items[-1])
                continue
            item = self.atom(lookaround)
            if item is not None:
                items.append(item)

    def _bound_follows(self) -> bool:
        """'{' starts a bound only when a digit follows (else it is an ordinary '{')."""
        i = self.pos + 1
        if self.opts.expanded:
            while i < len(self.src) and self.src[i] in ASCII_SPACE:
                i += 1
        return i < len(self.src) and self.src[i] in "0123456789"

    def quantify(self, item: _Item) -> _Item:
        ch = self.take()
        if ch == "{":
            low, high = self.bound()
            text = f"{{{low},}}" if high is None else f"{{{low},{high}}}"
            cancels = high == 0
        else:
            text, cancels = ch, False
        if self.peek() == "?":  # non-greedy: the same matches, another preference
            self.take()
            text += "?"
        if cancels and item.group is not None:  # "(x){0}": the group never exists
            self.closed.discard(item.group)
        return _Item(f"(?:{item.text}){text}", quantifiable=False)

    def bound(self) -> tuple[int, int | None]:
        """After '{': m, "m," or "m,n" (numbers up to 255, m <= n), then '}'."""
        low = self.number()
        high: int | None = low
        self.skip_blanks()
        if self.peek() == ",":
            self.take()
            self.skip_blanks()
            high = self.number() if self.peek() in tuple("0123456789") else None
            if high is not None and low > high:
                raise PgRegexError(BADBR)
        self.skip_blanks()
        if self.at_end():
            raise PgRegexError(EBRACE)
        if self.take() != "}":
            raise PgRegexError(BADBR)
        return low, high

    def number(self) -> int:
        self.skip_blanks()
        digits = ""
        while self.peek() in tuple("0123456789"):
            digits += self.take()
        if not digits:
            raise PgRegexError(EBRACE if self.at_end() else BADBR)
        if int(digits) > DUPMAX:
            raise PgRegexError(BADBR)
        return int(digits)

    def atom(self, lookaround: bool) -> _Item | None:
        ch = self.take()
        if ch == "(":
            return self.group(lookaround)
        if ch == "[":
            if self.src.startswith(("[:<:]]", "[:>:]]"), self.pos):
                text = START_OF_WORD if self.src[self.pos + 2] == "<" else END_OF_WORD
                self.pos += 6
                return _Item(text, quantifiable=False)
            return _Item(self.bracket(), quantifiable=True)
        if ch == ".":
            return _Item("[^\\n]" if self.opts.nlstop else ".", quantifiable=True)
        if ch == "^":
            return _Item("(?:^|(?<=\\n))" if self.opts.nlanch else "^", quantifiable=False)
        if ch == "$":
            return _Item("(?=\\n|\\Z)" if self.opts.nlanch else "\\Z", quantifiable=False)
        if ch == "\\":
            return self.escape(lookaround)
        return _Item(_literal(ord(ch)), quantifiable=True)  # '}' and ']' are ordinary here

    def group(self, lookaround: bool) -> _Item | None:
        """After '(': a group, a lookaround constraint or a comment."""
        if self.peek() != "?":
            if lookaround:  # parentheses inside lookaround constraints do not capture
                return _Item(f"(?:{self.regex(lookaround, nested=True)})", quantifiable=True)
            self.opened += 1
            number = self.opened
            inner = self.regex(lookaround, nested=True)
            self.closed.add(number)
            return _Item(f"({inner})", quantifiable=True, group=number)
        self.take()  # '?'
        kind = self.take() if not self.at_end() else ""
        if kind == ":":
            return _Item(f"(?:{self.regex(lookaround, nested=True)})", quantifiable=True)
        if kind == "#":  # a comment vanishes, even between an atom and its quantifier
            end = self.src.find(")", self.pos)
            self.pos = len(self.src) if end < 0 else end + 1
            return None
        if kind in ("=", "!"):
            return _Item(f"(?{kind}{self.regex(True, nested=True)})", quantifiable=False)
        if kind == "<" and self.peek() in ("=", "!"):
            sign = self.take()
            text = f"(?<{sign}{self.regex(True, nested=True)})"
            try:  # PostgreSQL allows any lookbehind, Python only fixed-width ones
                re.compile(text, re.ASCII | re.DOTALL)
            except re.error as exc:
                raise Unsupported(f"lookbehind {text!r}: {exc}") from exc
            return _Item(text, quantifiable=False)
        # (?P<name>...), (?<name>...), (?i) past the start, (?>...), (?|...): not PostgreSQL
        raise PgRegexError(BADRPT)

    # -- escapes ------------------------------------------------------------------------------

    def escape(self, lookaround: bool) -> _Item:
        if self.at_end():
            raise PgRegexError(EESCAPE)
        kind, value = self.lex_escape()
        if kind == "char":
            return _Item(_literal(value), quantifiable=True)
        if kind == "class":
            return _Item(f"[{CLASSES[value]}]", quantifiable=True)
        if kind == "complement":
            return _Item(f"[^{CLASSES[value]}]", quantifiable=True)
        if kind == "backref":
            if lookaround or value not in self.closed:
                raise PgRegexError(ESUBREG)
            return _Item(f"(?:\\{value})", quantifiable=True)
        return _Item(CONSTRAINTS[value], quantifiable=False)

    def lex_escape(self) -> tuple[str, int]:
        """After a backslash (regc_lex.c lexescape): ("char", code), ("class" |
        "complement", class name), ("backref", n) or ("constraint", letter)."""
        c = self.take()
        if not (c.isascii() and c.isalnum()):
            return "char", ord(c)
        if c in CHARACTER_ENTRY:
            return "char", ord(CHARACTER_ENTRY[c])
        if c in SHORTHANDS:
            return "class", SHORTHANDS[c]
        if c.lower() in SHORTHANDS:
            return "complement", SHORTHANDS[c.lower()]
        if c in CONSTRAINTS:
            return "constraint", c
        if c == "c":
            if self.at_end():
                raise PgRegexError(EESCAPE)
            return "char", ord(self.take()) & 0o37
        if c in "uUx":
            low, high = {"u": (4, 4), "U": (8, 8), "x": (1, 255)}[c]
            code = self.digits(16, low, high)
            if code > CHR_MAX:
                raise PgRegexError(EESCAPE)
            return "char", code
        if c in "123456789":
            start = self.pos - 1
            self.pos = start
            n = self.digits(10, 1, 255)
            if self.pos == start + 1 or 0 < n <= self.opened:
                return "backref", n
            self.pos = start  # not a back reference after all: an octal number
        if c in "0123456789":
            if c == "0":
                self.pos -= 1  # read the octal number from its first digit
            code = self.digits(8, 1, 3)
            if code > 0xFF:  # one digit too many
                self.pos -= 1
                code >>= 3
            return "char", code
        raise PgRegexError(EESCAPE)  # \z, \G, \K, \p, \h, \k, \g, ...: reserved, an error

    def digits(self, base: int, low: int, high: int) -> int:
        value = count = 0
        while count < high and not self.at_end():
            d = "0123456789abcdef".find(self.peek().lower()) if self.peek().isascii() else -1
            if d < 0 or d >= base:
                break
            self.pos += 1
            value = value * base + d
            count += 1
        if count < low:
            raise PgRegexError(EESCAPE)
        return value

    # -- bracket expressions -------------------------------------------------------------------

    def bracket(self) -> str:
        """After '[': a bracket expression as a Python character class."""
        negate = self.peek() == "^"
        if negate:
            self.take()
        parts: list[str] = []
        tokens = self.bracket_tokens()
        i = 0
        while i < len(tokens):
            kind, value = tokens[i]
            i += 1
            if kind == "range":  # a '-' where an element belongs: [a-c-e], [[:digit:]-z]
                raise PgRegexError(ERANGE)
            if kind in ("class", "shorthand"):
                if value not in CLASSES:
                    raise PgRegexError(ECTYPE)
                parts.append(CLASSES[value])
                continue
            if kind == "complement":
                parts.append(_complement(CLASSES[value]))
                continue
            start = self.element(kind, value)
            if kind == "eclass" or i == len(tokens) or tokens[i][0] != "range":
                parts.append(_literal(start))
                continue
            i += 1  # the '-' of a range; the endpoint is a character or a collating element
            end_kind, end_value = tokens[i] if i < len(tokens) else ("", 0)
            i += 1
            if end_kind not in ("char", "range", "collel"):
                raise PgRegexError(ERANGE)
            end = self.element(end_kind, end_value)
            if start > end:
                raise PgRegexError(ERANGE)
            if start <= 0x10FFFF:
                parts.append(f"{_literal(start)}-{_literal(min(end, 0x10FFFF))}")
        if negate and self.opts.nlstop:
            parts.append("\\n")
        parts = [p for p in parts if p != NEVER]
        if not parts:
            return "[\\x00-\\U0010ffff]" if negate else NEVER
        return f"[{'^' if negate else ''}{''.join(parts)}]"

    @staticmethod
    def element(kind: str, value) -> int:
        """A character, or a collating element / equivalence class naming one."""
        if kind in ("char", "range"):
            return value
        if not value:
            raise PgRegexError(ECOLLATE)
        if len(value) != 1:
            raise Unsupported(f"collating element {value!r}")
        return ord(value)

    def bracket_tokens(self) -> list[tuple[str, object]]:
        """The tokens of a bracket expression up to its ']' (regc_lex.c, context L_BRACK)."""
        tokens: list[tuple[str, object]] = []
        while True:
            if self.at_end():
                raise PgRegexError(EBRACK)
            first = not tokens
            c = self.take()
            if c == "]" and not first:
                return tokens
            if c == "\\":
                if self.at_end():
                    raise PgRegexError(EESCAPE)
                kind, value = self.lex_escape()
                if kind == "char":
                    tokens.append(("char", value))
                elif kind == "class":
                    tokens.append(("shorthand", value))
                elif kind == "complement":  # \D \S \W inside brackets: PostgreSQL 14 and later
                    tokens.append(("complement", value))
                else:
                    raise PgRegexError(EESCAPE)  # constraints and back references
            elif c == "-":  # ordinary first or last, else a range operator
                tokens.append(("char" if first or self.peek() == "]" else "range", ord(c)))
            elif c == "[" and self.peek() in (".", "=", ":"):
                delim = self.take()
                close = self.src.find(delim + "]", self.pos)
                if close < 0:
                    raise PgRegexError(EBRACK)
                name = self.src[self.pos:close]
                self.pos = close + 2
                tokens.append(({".": "collel", "=": "eclass", ":": "class"}[delim], name))
            else:
                tokens.append(("char", ord(c)))


def _complement(fragment: str) -> str:
    """The complement of an ASCII class fragment, as fragment text (\\D \\S \\W inside [])."""
    members = {i for i in range(128) if re.fullmatch(f"[{fragment}]", chr(i))}
    out, i = [], 0
    while i < 128:
        if i in members:
            i += 1
            continue
        j = i
        while j + 1 < 128 and j + 1 not in members:
            j += 1
        out.append(f"\\x{i:02x}-\\x{j:02x}" if j > i else f"\\x{i:02x}")
        i = j + 1
    out.append("\\x80-\\U0010ffff")
    return "".join(out)


def _prefixes(src: str) -> tuple[str, _Options, bool]:
    """Directors (`***=`, `***:`) and leading embedded options; returns (rest, options,
    literal)."""
    opts = _Options()
    if len(src) >= 4 and src.startswith("***"):
        director = src[3]
        if director == "=":
            return src[4:], opts, True
        if director != ":":
            raise PgRegexError(BADPAT if director == "?" else BADRPT)
        src = src[4:]
    if len(src) >= 3 and src.startswith("(?") and src[2].isascii() and src[2].isalpha():
        i, literal, flavour = 2, False, None
        while i < len(src) and src[i].isascii() and src[i].isalpha():
            letter = src[i]
            if letter == "b":
                flavour, literal = "BRE", False
            elif letter == "e":
                flavour, literal = "ERE", False
            elif letter == "c":
                opts.icase = False
            elif letter == "i":
                opts.icase = True
            elif letter in "mn":
                opts.nlstop = opts.nlanch = True
            elif letter == "p":
                opts.nlstop, opts.nlanch = True, False
            elif letter == "q":
                literal = True
            elif letter == "s":
                opts.nlstop = opts.nlanch = False
            elif letter == "t":
                opts.expanded = False
            elif letter == "w":
                opts.nlstop, opts.nlanch = False, True
            elif letter == "x":
                opts.expanded = True
            else:
                raise PgRegexError(BADOPT)
            i += 1
        if i >= len(src) or src[i] != ")":
            raise PgRegexError(BADOPT)
        if flavour is not None and not literal:
            raise Unsupported(f"(?{src[2:i]}) switches to {flavour} syntax")
        return src[i + 1:], opts, literal
    return src, opts, False


def translate(pattern: str) -> tuple[str, int]:
    """A PostgreSQL ARE as (Python pattern, re flags), for `re.search`."""
    src, opts, literal = _prefixes(pattern)
    flags = re.ASCII | re.DOTALL | (re.IGNORECASE if opts.icase else 0)
    if literal:
        return "".join(_literal(ord(ch)) for ch in src), flags
    return _Parser(src, opts).regex(), flags


@lru_cache(maxsize=512)
def compile_are(pattern: str) -> re.Pattern[str]:
    """Compile a PostgreSQL ARE for `search()`: PgRegexError where PostgreSQL refuses it,
    Unsupported where it is valid but not translatable."""
    python, flags = translate(pattern)
    try:
        return re.compile(python, flags)
    except (re.error, OverflowError, RecursionError) as exc:  # pragma: no cover - translator bug
        raise Unsupported(f"{pattern!r} translated to {python!r}: {exc}") from exc
