"""GT4 (WS GRAM) XML job descriptions: ``<job><executable>..</executable><argument>..</argument>..</job>``.

Elements are read in or out of the job-description namespace, with ``${GLOBUS_USER_HOME}``-style
substitutions from the variables given (the environment: XML has no definitions of its own).
The XML goes through ``defusedxml`` with DTDs forbidden, so no entity expansion or external
reference is ever followed; the text is size-limited and so is what substitution adds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from tiercel.core.problems import MISSING, Problem
from tiercel.jobspec.gram import (
    MAX_DESCRIPTION_CHARS,
    XML_SUPPORTED,
    Attr,
    Budget,
    Fail,
    JobDescription,
    Value,
    canonical,
    to_request,
)

_XML_VAR = re.compile(r"\$\{([^}]*)\}")
_XML_TEXT = {canonical(s) for s in XML_SUPPORTED} - {"argument", "environment", "filestagein", "filestageout"}


def _substitute(text: str, variables: Mapping[str, str], label: str, budget: Budget) -> str:
    out, pos = [], 0
    for m in _XML_VAR.finditer(text):
        name = m.group(1)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise Fail(Problem(label, m.group(0), "is not a substitution: write ${NAME}"))
        if name not in variables:
            raise Fail(Problem(label, m.group(0), "is not defined: set it in the environment "
                                                   "(GLOBUS_USER_HOME and GLOBUS_USER_NAME always are)"))
        budget.charge(label, m.group(0), len(variables[name]))
        out += [text[pos:m.start()], variables[name]]
        pos = m.end()
    rest = text[pos:]
    if "${" in rest:
        raise Fail(Problem(label, rest[rest.index("${"):][:40], "is never closed with '}'"))
    return "".join(out) + rest


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _text_of(el: Element, label: str) -> str:
    if len(el):
        raise Fail(Problem(label, MISSING, f"must hold text, not the element <{_local(el[0].tag)}>"))
    return el.text or ""


def _xml_environment(el: Element, variables: Mapping[str, str], budget: Budget) -> Value:
    fields: dict[str, str] = {}
    for child in el:
        name = _local(child.tag)
        if name not in ("name", "value") or name in fields:
            raise Fail(Problem("<environment>", MISSING, "must hold one <name> and one <value>"))
        fields[name] = _substitute(_text_of(child, f"<environment><{name}>"), variables, "<environment>", budget)
    if "name" not in fields or (el.text or "").strip():
        raise Fail(Problem("<environment>", MISSING, "must hold one <name> and one <value>"))
    return [fields["name"].strip(), fields.get("value", "")]


def _xml_staging(el: Element, variables: Mapping[str, str], budget: Budget) -> list[Value]:
    """``<fileStageIn><transfer><sourceUrl>..</sourceUrl><destinationUrl>..</destinationUrl></transfer>..``
    as (source destination) pairs; a destination ``file:///${GLOBUS_USER_HOME}/x`` or a plain name alike."""
    label = f"<{_local(el.tag)}>"
    out: list[Value] = []
    for transfer in el:
        if _local(transfer.tag) != "transfer":
            raise Fail(Problem(label, MISSING, "must hold <transfer> elements, each a <sourceUrl> and a "
                                               "<destinationUrl>"))
        ends: dict[str, str] = {}
        for part in transfer:
            name = _local(part.tag)
            if name not in ("sourceUrl", "destinationUrl") or name in ends:
                raise Fail(Problem(label, MISSING, "must hold one <sourceUrl> and one <destinationUrl> per <transfer>"))
            ends[name] = _substitute(_text_of(part, f"{label}<{name}>").strip(), variables, label, budget)
        if len(ends) != 2:
            raise Fail(Problem(label, MISSING, "must hold one <sourceUrl> and one <destinationUrl> per <transfer>"))
        local = [u for u in ends.values() if not u.startswith("gfarm://")]
        if local and local[0].startswith("file://"):
            base = local[0].rsplit("/", 1)[-1]
            ends = {k: base if v == local[0] else v for k, v in ends.items()}
        out.append([ends["sourceUrl"], ends["destinationUrl"]])
    return out


def _xml_attrs(root: Element, variables: Mapping[str, str]) -> list[Attr]:
    budget = Budget()  # ${NAME} comes from the environment only, but may be large and used many times
    if (root.text or "").strip() or any((c.tail or "").strip() for c in root):
        raise Fail(Problem("<job>", MISSING, "must hold only elements, no loose text"))
    arguments: list[Value] = []
    environment: list[Value] = []
    attrs: list[Attr] = []
    for child in root:
        name = _local(child.tag)
        label = f"<{name}>"
        key = canonical(name)
        if key == "argument":
            arguments.append(_substitute(_text_of(child, label), variables, label, budget))
        elif key == "environment":
            environment.append(_xml_environment(child, variables, budget))
        elif key == "arguments":  # the RSL spelling, which the schema does not have
            raise Fail(Problem(label, MISSING, "is not a GT4 element: give each argument as <argument>"))
        elif key in ("filestagein", "filestageout"):
            attrs.append(Attr(label, key, _xml_staging(child, variables, budget)))
        elif key in _XML_TEXT:
            attrs.append(Attr(label, key, [_substitute(_text_of(child, label).strip(), variables, label, budget)]))
        else:  # refused by name in to_request, whatever it holds
            attrs.append(Attr(label, key, []))
    if arguments:
        attrs.append(Attr("<argument>", "arguments", arguments))
    if environment:
        attrs.append(Attr("<environment>", "environment", environment))
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
        home = variables.get("GLOBUS_USER_HOME") or variables.get("HOME")
        return to_request(_xml_attrs(root, variables), "xml", home)
    except Fail as fail:
        return fail.problem
