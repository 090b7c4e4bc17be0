"""CSF4 job descriptions: Globus GT2 RSL and GT4 (WS GRAM) XML, read into JobRequest fields.

CSF4 users describe a job once and submit it by name (``csf-job-create -rsl job.rsl -name j1``).
The descriptions are the Globus ones:

- **GT2 RSL**: ``&(executable=/bin/echo)(directory=$(HOME))(arguments="a b" c)(stdout=out)`` — a
  conjunction of ``(attribute=value)`` relations. Values are unquoted words, quoted strings
  (``"..."`` or ``'...'``, the delimiter doubled inside: ``'it''s'``; or ``^Xtext X`` with a
  delimiter of one's choosing), sequences (``(arguments=a "b c" d)``, ``(environment=(A 1)(B 2))``),
  ``$(NAME)`` or ``$(NAME default)`` substitutions, and concatenation, written ``#`` or implied
  where a word touches a substitution (``$(HOME)/out``). ``(* comments *)`` are skipped. Attribute
  names ignore case and underscores (``max_wall_time`` is ``maxWallTime``), as GRAM's do.
- **GT4 XML**: ``<job><executable>..</executable><argument>..</argument>..</job>`` with
  ``${GLOBUS_USER_HOME}``-style substitutions, in or out of the job-description namespace.

Both map onto what Tiercel's JobRequest knows (see ``_map`` and the README's table). An
attribute Tiercel cannot honour is refused by name, never ignored: a description that says
``(fileStageIn=...)`` expects files to be staged, and silently running without them would be
worse than saying so.

The RSL parser is written here, a tokenizer and a recursive descent over the grammar of the
Globus Toolkit's ``globus_rsl_parser.y``: the only RSL parser is that C library (globus-rsl, now
kept by the Grid Community Toolkit); no maintained Python package parses RSL (PyPI's ``pyrsl`` is
the unrelated xtUML rule-specification language, and pyGlobus, the GT2-era binding to the C
library, ended with GT4). XML goes through ``defusedxml`` with DTDs forbidden, so no entity
expansion or external reference is ever followed, and both inputs are size-limited. So is what
substitution adds (``MAX_EXPANDED_CHARS``), checked before each value is built: ten
``rsl_substitution`` definitions that each repeat the one before ten times would otherwise build
10⁹ characters out of a few hundred.

Everything here is pure: text and the variables to substitute come in, a ``JobDescription`` or a
``Problem`` naming the attribute (or line and column) comes out.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from tiercel.core.problems import MISSING, Problem
from tiercel.jobs import MAX_TASKS

MAX_DESCRIPTION_CHARS = 256 * 1024
# What substitution may add to a description, definitions included: generous for paths and
# arguments (a job request holds strings of at most 64 KiB), far below what hurts to build
MAX_EXPANDED_CHARS = 1024 * 1024
MAX_DEPTH = 32  # nesting of parentheses; deeper is never a job description, and recursion is bounded

Value: TypeAlias = "str | list[Value]"


@dataclass(frozen=True, slots=True)
class JobDescription:
    """A job description as Tiercel will run it."""

    kind: str  # "rsl" or "xml"
    request: dict[str, Any]  # JobRequest fields: command, queue, cwd, env, queue_name, walltime, memory, cpus
    stdout: str | None  # where 'tiercel job data' writes the tasks' output (None: NAME.stdout)
    stderr: str | None


def standard_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """The substitutions a description may use: the environment plus the names Globus defines.

    ``$(HOME)``, ``$(LOGNAME)`` (GT2) and ``${GLOBUS_USER_HOME}``, ``${GLOBUS_USER_NAME}`` (GT4)
    name the submitting user's home directory and login.
    """
    out = dict(environ)
    home = environ.get("HOME")
    user = environ.get("USER") or environ.get("LOGNAME")
    if home:
        out.setdefault("GLOBUS_USER_HOME", home)
    if user:
        out.setdefault("LOGNAME", user)
        out.setdefault("GLOBUS_USER_NAME", user)
    return out


def looks_like_xml(text: str) -> bool:
    return text.lstrip("\ufeff \t\r\n").startswith("<")


def parse_description(text: str, variables: Mapping[str, str]) -> JobDescription | Problem:
    """An XML description if the text starts with ``<``, else RSL."""
    return parse_xml(text, variables) if looks_like_xml(text) else parse_rsl(text, variables)


class _Fail(Exception):
    """Unwinds the parser to its entry point, which returns the Problem."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem


# ---- attributes and what they become ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Attr:
    label: str  # how errors name it: "count (line 3)" or "<count>"
    key: str  # canonical: lower case, without underscores
    value: list[Value]  # the relation's value sequence


RSL_SUPPORTED = ("executable", "arguments", "directory", "environment", "count", "jobType", "queue", "maxWallTime",
                 "maxTime", "maxMemory", "stdout", "stderr", "rsl_substitution")
XML_SUPPORTED = ("executable", "argument", "directory", "environment", "count", "jobType", "queue", "maxWallTime",
                 "maxTime", "maxMemory", "stdout", "stderr")

_NO_STAGING = "is not supported: Tiercel stages no files, tasks use the worker's file system"
_REFUSED = {
    "stdin": "is not supported: tasks run without standard input (let the program open the file)",
    "project": "is not supported: Tiercel keeps no project accounts (fair share is per user); leave it out",
    "hostcount": "is not supported: Tiercel runs count independent tasks, it does not spread one job over hosts",
    "maxcputime": "is not supported: Tiercel limits wall-clock time only (maxWallTime)",
    "minmemory": "is not supported: give the memory a task needs as maxMemory",
    "filestagein": _NO_STAGING,
    "filestageinshared": _NO_STAGING,
    "filestageout": _NO_STAGING,
    "filecleanup": _NO_STAGING,
    "multijob": "is not supported: describe one job per file",
}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _canonical(name: str) -> str:
    return name.lower().replace("_", "")


def _show(value: list[Value]) -> str:
    def one(v: Value) -> str:
        if isinstance(v, list):
            return "(" + " ".join(one(x) for x in v) + ")"
        return v if v and re.fullmatch(r"[^\s()\"]+", v) else '"' + v.replace('"', '""') + '"'

    return " ".join(one(v) for v in value)


def _one(a: _Attr) -> str:
    if len(a.value) != 1 or not isinstance(a.value[0], str):
        hint = " (quote it, or join its parts with #)" if len(a.value) > 1 else ""
        raise _Fail(Problem(a.label, _show(a.value), f"must be a single value{hint}"))
    return a.value[0]


def _whole(a: _Attr, low: int, high: int, unit: str) -> int:
    text = _one(a).strip()
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise _Fail(Problem(a.label, text, f"must be a whole number of {unit} from {low} to {high}"))
    return int(text)


def _path(a: _Attr, what: str) -> str:
    text = _one(a)
    if not text.strip():
        raise _Fail(Problem(a.label, text, "must not be empty"))
    if _URL.match(text):
        raise _Fail(Problem(a.label, text, f"must be {what}: Tiercel does not transfer files to or from URLs"))
    return text


def _strings(a: _Attr) -> list[str]:
    if not all(isinstance(v, str) for v in a.value):
        raise _Fail(Problem(a.label, _show(a.value), "must be plain values, not parenthesised lists"))
    return [v for v in a.value if isinstance(v, str)]


def _pairs(a: _Attr) -> list[tuple[str, str]]:
    out = []
    for v in a.value:
        if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v)):
            raise _Fail(Problem(a.label, _show(a.value), "must be pairs: (NAME value)(NAME2 value2)"))
        name = str(v[0])
        if not name or "=" in name or "\0" in name:
            raise _Fail(Problem(a.label, name, "is not a variable name: it must be non-empty, without '=' or NUL"))
        out.append((name, str(v[1])))
    return out


def _check(attrs: list[_Attr], kind: str) -> dict[str, _Attr]:
    """Each attribute once, every unknown one refused by name; by canonical key."""
    supported = RSL_SUPPORTED if kind == "rsl" else XML_SUPPORTED
    known = {_canonical(s) for s in RSL_SUPPORTED} - {"rslsubstitution"}  # XML's <argument>s come as arguments
    seen: dict[str, _Attr] = {}
    for a in attrs:
        if a.key not in known:
            reason = _REFUSED.get(a.key, "is not a job attribute Tiercel supports")
            raise _Fail(Problem(a.label, MISSING, f"{reason} (supported: {', '.join(supported)})"))
        if a.key in seen:
            raise _Fail(Problem(a.label, MISSING, f"is given twice (first as {seen[a.key].label})"))
        seen[a.key] = a
    if "executable" not in seen:
        example = "(executable=/path/to/program)" if kind == "rsl" else "<executable>/path/to/program</executable>"
        raise _Fail(Problem("executable", MISSING, f"is required: {example}"))
    if "maxwalltime" in seen and "maxtime" in seen:
        raise _Fail(Problem(seen["maxtime"].label, MISSING, "cannot be given with maxWallTime (choose one)"))
    return seen


def _map(attrs: list[_Attr], kind: str, home: str | None) -> JobDescription:
    """Attributes → JobRequest fields (the README's table)."""
    seen = _check(attrs, kind)
    # the executable runs as written, with its arguments, without a shell and without the index
    # appended: GRAM's meaning; each task finds its index in TIERCEL_TASK_INDEX
    command = [_path(seen["executable"], "a program on the worker")]
    if "arguments" in seen:
        command += _strings(seen["arguments"])
    req: dict[str, Any] = {"command": command, "shell": False, "append_index": False}
    if "directory" in seen:
        cwd = _path(seen["directory"], "a directory on the worker")
        # GRAM takes a relative directory under the user's home
        req["cwd"] = cwd if cwd.startswith("/") or not home else home.rstrip("/") + "/" + cwd
    if "environment" in seen:
        req["env"] = dict(_pairs(seen["environment"]))
    count = _whole(seen["count"], 1, MAX_TASKS, "tasks") if "count" in seen else 1
    job_type = _one(seen["jobtype"]).strip().lower() if "jobtype" in seen else "multiple"
    if job_type in ("mpi", "condor"):
        raise _Fail(Problem(seen["jobtype"].label, job_type, "is not supported: Tiercel runs independent "
                                                             "processes (jobType single or multiple)"))
    if job_type not in ("single", "multiple"):
        raise _Fail(Problem(seen["jobtype"].label, job_type, "must be single or multiple"))
    # GRAM: multiple (the default) starts count processes: here a job array of count tasks;
    # single starts one process on count CPUs: here one task that takes count slots
    req["queue"] = count if job_type == "multiple" else 1
    if job_type == "single" and count > 1:
        req["cpus"] = count
    if "queue" in seen:
        req["queue_name"] = _one(seen["queue"]).strip()
        if not 1 <= len(req["queue_name"]) <= 64:
            raise _Fail(Problem(seen["queue"].label, req["queue_name"], "must be a queue name of 1 to 64 characters"))
    wall = seen.get("maxwalltime") or seen.get("maxtime")
    if wall is not None:  # minutes in GRAM
        req["walltime"] = 60 * _whole(wall, 1, 365 * 24 * 60, "minutes")
    if "maxmemory" in seen:  # megabytes in GRAM, as in Tiercel
        req["memory"] = _whole(seen["maxmemory"], 1, 64 * 1024 * 1024, "megabytes")
    outputs = {k: _path(seen[k], "a file name") if k in seen else None for k in ("stdout", "stderr")}
    return JobDescription(kind, req, outputs["stdout"], outputs["stderr"])


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
                raise _Fail(Problem(src.where(i), MISSING, "a comment '(*' is never closed with '*)'"))
            i = end + 2
        elif c in "()&|+#$":
            out.append(_Tok(c, c, i, i + 1))
            i += 1
        elif c in "=<>!":
            op = text[i:i + 2] if text.startswith(("!=", "<=", ">="), i) else c
            if op == "!":
                raise _Fail(Problem(src.where(i), "!", "is not an operator: write != (or quote the value)"))
            out.append(_Tok("op", op, i, i + len(op)))
            i += len(op)
        elif c in "\"'^":
            tok = _quoted(src, i)
            out.append(tok)
            i = tok.end
        elif c in "*?~":
            raise _Fail(Problem(src.where(i), c, 'cannot appear unquoted in RSL: put the value in double quotes'))
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
            raise _Fail(Problem(src.where(start), MISSING, "'^' must be followed by the quote character to use"))
        delim, i = text[start + 1], start + 2
    else:
        delim, i = text[start], start + 1
    parts = []
    while True:
        end = text.find(delim, i)
        if end < 0:
            raise _Fail(Problem(src.where(start), MISSING, f"a quoted value is never closed with {delim}"))
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

    def fail(self, tok: _Tok, expected: str) -> _Fail:
        if tok.kind == "end":
            return _Fail(Problem(self.src.where(tok.start), MISSING, f"ends early: expected {expected}"))
        return _Fail(Problem(self.src.where(tok.start), tok.text, f"is not expected here: expected {expected}"))

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
            raise _Fail(Problem(self.src.where(self.peek().start), MISSING, f"nests deeper than {MAX_DEPTH} levels"))
        tok = self.peek()
        if tok.kind in ("|", "+"):
            what = "disjunctions (|)" if tok.kind == "|" else "multi-requests (+)"
            raise _Fail(Problem(self.src.where(tok.start), tok.text, f"is not supported: a description is one "
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
            raise _Fail(Problem(self.src.where(op.start), op.text, f"is not supported for {name.text}: only '=' is"))
        return _Relation(name.text, name.start, self.sequence(depth))

    def sequence(self, depth: int) -> list[_Node]:
        if depth > MAX_DEPTH:
            raise _Fail(Problem(self.src.where(self.peek().start), MISSING, f"nests deeper than {MAX_DEPTH} levels"))
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


# ---- substitution budget --------------------------------------------------------------------


class _Budget:
    """What substitution may still add to one description, charged before a value is used.

    Every substituted value is either a variable of the environment or one defined earlier in
    the description, itself built under this budget; charging its length before it is joined
    into anything keeps every string built here below the limit, however the definitions nest.
    """

    def __init__(self) -> None:
        self.left = MAX_EXPANDED_CHARS
        self.context = ""  # what is being expanded, for the message: "the definition of OUT"

    def charge(self, where: str, shown: str, size: int) -> None:
        if size > self.left:
            used = MAX_EXPANDED_CHARS - self.left
            inside = f" in {self.context}" if self.context else ""
            raise _Fail(Problem(where, shown, f"expands to {size:,} characters{inside}: substitution may add at most "
                                              f"{MAX_EXPANDED_CHARS:,} characters to a job description, definitions "
                                              f"included ({used:,} already added)"))
        self.left -= size


# ---- GT2 RSL: substitution ------------------------------------------------------------------


def _eval(node: _Node, variables: Mapping[str, str], src: _Text, budget: _Budget) -> Value:
    if isinstance(node, _Lit):
        return node.text
    if isinstance(node, _Seq):
        return [_eval(n, variables, src, budget) for n in node.items]
    if isinstance(node, _Cat):  # of words and substitutions only: the grammar allows nothing else
        return "".join(str(_eval(n, variables, src, budget)) for n in node.parts)
    args = [_eval(n, variables, src, budget) for n in node.args]
    if not 1 <= len(args) <= 2 or not all(isinstance(a, str) for a in args):
        raise _Fail(Problem(src.where(node.at), MISSING, "a substitution is $(NAME) or $(NAME default)"))
    name = str(args[0])
    if name in variables:
        value = variables[name]
        budget.charge(src.where(node.at), f"$({name})", len(value))
        return value
    if len(args) == 2:
        return args[1]
    raise _Fail(Problem(src.where(node.at), f"$({name})", "is not defined: set it in the environment or define it "
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
        budget = _Budget()
        # rsl_substitution definitions apply to the whole description; each pair sees the ones before it
        for rel in relations:
            if _canonical(rel.name) == "rslsubstitution":
                label = f"{rel.name} (line {src.line(rel.at)})"
                for node in rel.value:
                    budget.context = f"the definition of {_defined_name(node) or 'a substitution'}"
                    [(name, value)] = _pairs(_Attr(label, "", [_eval(node, scope, src, budget)]))
                    scope[name] = value
        attrs = []
        for r in relations:
            if _canonical(r.name) != "rslsubstitution":
                budget.context = r.name
                values = [_eval(n, scope, src, budget) for n in r.value]
                attrs.append(_Attr(f"{r.name} (line {src.line(r.at)})", _canonical(r.name), values))
        return _map(attrs, "rsl", scope.get("HOME"))
    except _Fail as fail:
        return fail.problem


# ---- GT4 XML --------------------------------------------------------------------------------

_XML_VAR = re.compile(r"\$\{([^}]*)\}")
_XML_TEXT = {_canonical(s) for s in XML_SUPPORTED} - {"argument", "environment"}


def _substitute(text: str, variables: Mapping[str, str], label: str, budget: _Budget) -> str:
    out, pos = [], 0
    for m in _XML_VAR.finditer(text):
        name = m.group(1)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise _Fail(Problem(label, m.group(0), "is not a substitution: write ${NAME}"))
        if name not in variables:
            raise _Fail(Problem(label, m.group(0), "is not defined: set it in the environment "
                                                    "(GLOBUS_USER_HOME and GLOBUS_USER_NAME always are)"))
        budget.charge(label, m.group(0), len(variables[name]))
        out += [text[pos:m.start()], variables[name]]
        pos = m.end()
    rest = text[pos:]
    if "${" in rest:
        raise _Fail(Problem(label, rest[rest.index("${"):][:40], "is never closed with '}'"))
    return "".join(out) + rest


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _text_of(el: Element, label: str) -> str:
    if len(el):
        raise _Fail(Problem(label, MISSING, f"must hold text, not the element <{_local(el[0].tag)}>"))
    return el.text or ""


def _xml_environment(el: Element, variables: Mapping[str, str], budget: _Budget) -> Value:
    fields: dict[str, str] = {}
    for child in el:
        name = _local(child.tag)
        if name not in ("name", "value") or name in fields:
            raise _Fail(Problem("<environment>", MISSING, "must hold one <name> and one <value>"))
        fields[name] = _substitute(_text_of(child, f"<environment><{name}>"), variables, "<environment>", budget)
    if "name" not in fields or (el.text or "").strip():
        raise _Fail(Problem("<environment>", MISSING, "must hold one <name> and one <value>"))
    return [fields["name"].strip(), fields.get("value", "")]


def _xml_attrs(root: Element, variables: Mapping[str, str]) -> list[_Attr]:
    budget = _Budget()  # ${NAME} comes from the environment only, but may be large and used many times
    if (root.text or "").strip() or any((c.tail or "").strip() for c in root):
        raise _Fail(Problem("<job>", MISSING, "must hold only elements, no loose text"))
    arguments: list[Value] = []
    environment: list[Value] = []
    attrs: list[_Attr] = []
    for child in root:
        name = _local(child.tag)
        label = f"<{name}>"
        key = _canonical(name)
        if key == "argument":
            arguments.append(_substitute(_text_of(child, label), variables, label, budget))
        elif key == "environment":
            environment.append(_xml_environment(child, variables, budget))
        elif key == "arguments":  # the RSL spelling, which the schema does not have
            raise _Fail(Problem(label, MISSING, "is not a GT4 element: give each argument as <argument>"))
        elif key in _XML_TEXT:
            attrs.append(_Attr(label, key, [_substitute(_text_of(child, label).strip(), variables, label, budget)]))
        else:  # refused by name in _map, whatever it holds
            attrs.append(_Attr(label, key, []))
    if arguments:
        attrs.append(_Attr("<argument>", "arguments", arguments))
    if environment:
        attrs.append(_Attr("<environment>", "environment", environment))
    return attrs


def parse_xml(text: str, variables: Mapping[str, str]) -> JobDescription | Problem:
    """GT4 WS GRAM job description → JobDescription, substituting ``${NAME}`` from ``variables``."""
    if len(text) > MAX_DESCRIPTION_CHARS:
        return Problem("xml", MISSING, f"is too long: a job description has at most {MAX_DESCRIPTION_CHARS} characters")
    try:
        root = SafeET.fromstring(text, forbid_dtd=True)
    except ParseError as exc:
        line, col = getattr(exc, "position", (0, -1))
        reason = re.sub(r": line \d+, column \d+$", "", str(exc))
        return Problem(f"xml line {line}, column {col + 1}", MISSING, f"is not well-formed XML: {reason}")
    except DefusedXmlException:
        return Problem("xml", MISSING, "must not declare a DOCTYPE or entities")
    except ValueError as exc:
        return Problem("xml", MISSING, f"cannot be read: {exc}")
    name = _local(root.tag)
    if name == "multiJob":
        return Problem("<multiJob>", MISSING, "is not supported: describe one <job> per file")
    if name != "job":
        return Problem(f"<{name}>", MISSING, "is not a job description: the outermost element must be <job>")
    try:
        return _map(_xml_attrs(root, variables), "xml", variables.get("GLOBUS_USER_HOME") or variables.get("HOME"))
    except _Fail as fail:
        return fail.problem
