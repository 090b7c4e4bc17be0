"""GT2 RSL job descriptions: ``&(executable=/bin/echo)(directory=$(HOME))(arguments="a b" c)(stdout=out)``.

A description is a conjunction of ``(attribute=value)`` relations. Values are unquoted words,
quoted strings (``"..."`` or ``'...'``, the delimiter doubled inside: ``'it''s'``; or ``^Xtext X``
with a delimiter of one's choosing), sequences (``(arguments=a "b c" d)``,
``(environment=(A 1)(B 2))``), ``$(NAME)`` or ``$(NAME default)`` substitutions, and
concatenation, written ``#`` or implied where a word touches a substitution (``$(HOME)/out``).
``(* comments *)`` are skipped. ``(rsl_substitution=(NAME value))`` defines names for the rest of
the description, each pair seeing the ones before it.

The parser is written here, a tokenizer and a recursive descent over the grammar of the Globus
Toolkit's ``globus_rsl_parser.y``: the only RSL parser is that C library (globus-rsl, now kept by
the Grid Community Toolkit); no maintained Python package parses RSL (PyPI's ``pyrsl`` is the
unrelated xtUML rule-specification language, and pyGlobus, the GT2-era binding to the C library,
ended with GT4). Input is size-limited, nesting depth is bounded (``MAX_DEPTH``) so recursion is,
and what substitution adds is charged to a ``Budget`` before it is built.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

from tiercel.core.problems import MISSING, Problem
from tiercel.jobspec.gram import (
    MAX_DESCRIPTION_CHARS,
    Attr,
    Budget,
    Fail,
    JobDescription,
    Value,
    canonical,
    pairs,
    to_request,
)

MAX_DEPTH = 32  # nesting of parentheses; deeper is never a job description, and recursion is bounded


# ---- GT2 RSL: tokens ----------------------------------------------------------------------

_SPECIAL = frozenset("\t \n\r+&|=!<>()\"'^*$#?~")
_WHITE = frozenset(" \t\n\r")


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # ( ) op & | + # $ str end
    text: str
    start: int
    end: int
    quoted: bool = False


class _Text:
    """Positions → 'line L, column C' for messages."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]

    def line(self, pos: int) -> int:
        return bisect.bisect_right(self.starts, pos)

    def where(self, pos: int) -> str:
        line = self.line(pos)
        return f"rsl line {line}, column {pos - self.starts[line - 1] + 1}"


def _tokens(src: _Text) -> list[_Tok]:
    text, n, i = src.text, len(src.text), 0
    out: list[_Tok] = []
    while i < n:
        c = text[i]
        if c in _WHITE:
            i += 1
        elif text.startswith("(*", i):
            end = text.find("*)", i + 2)
            if end < 0:
                raise Fail(Problem(src.where(i), MISSING, "a comment '(*' is never closed with '*)'"))
            i = end + 2
        elif c in "()&|+#$":
            out.append(_Tok(c, c, i, i + 1))
            i += 1
        elif c in "=<>!":
            op = text[i:i + 2] if text.startswith(("!=", "<=", ">="), i) else c
            if op == "!":
                raise Fail(Problem(src.where(i), "!", "is not an operator: write != (or quote the value)"))
            out.append(_Tok("op", op, i, i + len(op)))
            i += len(op)
        elif c in "\"'^":
            tok = _quoted(src, i)
            out.append(tok)
            i = tok.end
        elif c in "*?~":
            raise Fail(Problem(src.where(i), c, 'cannot appear unquoted in RSL: put the value in double quotes'))
        else:
            j = i
            while j < n and text[j] not in _SPECIAL:
                j += 1
            out.append(_Tok("str", text[i:j], i, j))
            i = j
    out.append(_Tok("end", "", n, n))
    return out


def _quoted(src: _Text, start: int) -> _Tok:
    """``"..."`` or ``'...'``, or ``^X...X`` with any delimiter X; a doubled delimiter stands for itself."""
    text = src.text
    if text[start] == "^":
        if start + 1 >= len(text):
            raise Fail(Problem(src.where(start), MISSING, "'^' must be followed by the quote character to use"))
        delim, i = text[start + 1], start + 2
    else:
        delim, i = text[start], start + 1
    parts = []
    while True:
        end = text.find(delim, i)
        if end < 0:
            raise Fail(Problem(src.where(start), MISSING, f"a quoted value is never closed with {delim}"))
        parts.append(text[i:end])
        if text.startswith(delim * 2, end):
            parts.append(delim)
            i = end + 2
            continue
        return _Tok("str", "".join(parts), start, end + 1, quoted=True)


# ---- GT2 RSL: syntax ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Lit:
    text: str


@dataclass(frozen=True, slots=True)
class _Var:
    args: list[_Node]
    at: int


@dataclass(frozen=True, slots=True)
class _Cat:
    parts: list[_Node]  # flat, so a long a#b#c#... chain costs no recursion


@dataclass(frozen=True, slots=True)
class _Seq:
    items: list[_Node]


_Node: TypeAlias = "_Lit | _Var | _Cat | _Seq"


@dataclass(frozen=True, slots=True)
class _Relation:
    name: str
    at: int
    value: list[_Node]


class _RslParser:
    """Recursive descent over globus_rsl_parser.y; a leading '&' may be left out."""

    def __init__(self, src: _Text) -> None:
        self.src = src
        self.toks = _tokens(src)
        self.i = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def fail(self, tok: _Tok, expected: str) -> Fail:
        if tok.kind == "end":
            return Fail(Problem(self.src.where(tok.start), MISSING, f"ends early: expected {expected}"))
        return Fail(Problem(self.src.where(tok.start), tok.text, f"is not expected here: expected {expected}"))

    def expect(self, kind: str, expected: str) -> _Tok:
        if self.peek().kind != kind:
            raise self.fail(self.peek(), expected)
        return self.take()

    def document(self) -> list[_Relation]:
        if self.peek().kind == "end":
            raise self.fail(self.peek(), "a job description such as &(executable=/bin/echo)(arguments=hello)")
        rels = self.specification(0)
        if self.peek().kind != "end":
            raise self.fail(self.peek(), "the end of the description")
        return rels

    def specification(self, depth: int) -> list[_Relation]:
        if depth > MAX_DEPTH:
            raise Fail(Problem(self.src.where(self.peek().start), MISSING, f"nests deeper than {MAX_DEPTH} levels"))
        tok = self.peek()
        if tok.kind in ("|", "+"):
            what = "disjunctions (|)" if tok.kind == "|" else "multi-requests (+)"
            raise Fail(Problem(self.src.where(tok.start), tok.text, f"is not supported: a description is one "
                                                                    f"job, not {what}: &(attribute=value)(...)"))
        if tok.kind not in ("&", "("):
            return [self.relation(depth)]
        if tok.kind == "&":
            self.take()
            if self.peek().kind != "(":
                raise self.fail(self.peek(), "'(' after '&'")
        rels: list[_Relation] = []
        while self.peek().kind == "(":
            self.take()
            rels += self.specification(depth + 1)
            self.expect(")", "')' to close the relation")
        return rels

    def relation(self, depth: int) -> _Relation:
        name = self.expect("str", "an attribute name such as executable")
        op = self.expect("op", f"'=' after the attribute name {name.text!r}")
        if op.text != "=":
            raise Fail(Problem(self.src.where(op.start), op.text, f"is not supported for {name.text}: only '=' is"))
        return _Relation(name.text, name.start, self.sequence(depth))

    def sequence(self, depth: int) -> list[_Node]:
        if depth > MAX_DEPTH:
            raise Fail(Problem(self.src.where(self.peek().start), MISSING, f"nests deeper than {MAX_DEPTH} levels"))
        items: list[_Node] = []
        while self.peek().kind in ("str", "$", "("):
            if self.peek().kind == "(":
                self.take()
                items.append(_Seq(self.sequence(depth + 1)))
                self.expect(")", "')' to close the list")
            else:
                items.append(self.simple(depth))
        if not items:
            raise self.fail(self.peek(), "a value")
        return items

    def simple(self, depth: int) -> _Node:
        node, end, was_var, was_word = self.primary(depth)
        parts = [node]
        while True:
            tok = self.peek()
            if tok.kind == "#":
                self.take()
            # implied concatenation, as GRAM's scanner does it: a word touching '$(', or a
            # substitution's ')' touching a word or another '$('
            else:
                touching_var = tok.kind == "$" and (was_var or was_word)
                touching_word = was_var and tok.kind == "str" and not tok.quoted
                if tok.start != end or not (touching_var or touching_word):
                    return parts[0] if len(parts) == 1 else _Cat(parts)
            node, end, was_var, was_word = self.primary(depth)
            parts.append(node)

    def primary(self, depth: int) -> tuple[_Node, int, bool, bool]:
        """A value, where it ends, whether it is a substitution, whether an unquoted word."""
        tok = self.peek()
        if tok.kind == "str":
            self.take()
            return _Lit(tok.text), tok.end, False, not tok.quoted
        if tok.kind == "$":
            self.take()
            self.expect("(", "'(' after '$': write $(NAME)")
            args = self.sequence(depth + 1)
            close = self.expect(")", "')' to close $(NAME)")
            return _Var(args, tok.start), close.end, True, False
        raise self.fail(tok, "a value")


# ---- GT2 RSL: substitution ------------------------------------------------------------------


def _eval(node: _Node, variables: Mapping[str, str], src: _Text, budget: Budget) -> Value:
    if isinstance(node, _Lit):
        return node.text
    if isinstance(node, _Seq):
        return [_eval(n, variables, src, budget) for n in node.items]
    if isinstance(node, _Cat):  # of words and substitutions only: the grammar allows nothing else
        return "".join(str(_eval(n, variables, src, budget)) for n in node.parts)
    args = [_eval(n, variables, src, budget) for n in node.args]
    if not 1 <= len(args) <= 2 or not all(isinstance(a, str) for a in args):
        raise Fail(Problem(src.where(node.at), MISSING, "a substitution is $(NAME) or $(NAME default)"))
    name = str(args[0])
    if name in variables:
        value = variables[name]
        budget.charge(src.where(node.at), f"$({name})", len(value))
        return value
    if len(args) == 2:
        return args[1]
    raise Fail(Problem(src.where(node.at), f"$({name})", "is not defined: set it in the environment or define it "
                                                         "with (rsl_substitution=(NAME value))"))


def _defined_name(node: _Node) -> str:
    """The name an rsl_substitution pair defines, as written, for messages ('' if not a plain word)."""
    if isinstance(node, _Seq) and node.items and isinstance(node.items[0], _Lit):
        return node.items[0].text
    return ""


def parse_rsl(text: str, variables: Mapping[str, str]) -> JobDescription | Problem:
    """GT2 RSL → JobDescription, substituting ``$(NAME)`` from ``variables`` and rsl_substitution."""
    if len(text) > MAX_DESCRIPTION_CHARS:
        return Problem("rsl", MISSING, f"is too long: a job description has at most {MAX_DESCRIPTION_CHARS} characters")
    src = _Text(text.removeprefix("\ufeff"))
    try:
        relations = _RslParser(src).document()
        scope = dict(variables)
        budget = Budget()
        # rsl_substitution definitions apply to the whole description; each pair sees the ones before it
        for rel in relations:
            if canonical(rel.name) == "rslsubstitution":
                label = f"{rel.name} (line {src.line(rel.at)})"
                for node in rel.value:
                    budget.context = f"the definition of {_defined_name(node) or 'a substitution'}"
                    [(name, value)] = pairs(Attr(label, "", [_eval(node, scope, src, budget)]))
                    scope[name] = value
        attrs = []
        for r in relations:
            if canonical(r.name) != "rslsubstitution":
                budget.context = r.name
                values = [_eval(n, scope, src, budget) for n in r.value]
                attrs.append(Attr(f"{r.name} (line {src.line(r.at)})", canonical(r.name), values))
        return to_request(attrs, "rsl", scope.get("HOME"))
    except Fail as fail:
        return fail.problem
