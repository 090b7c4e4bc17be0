"""Pydantic's validation errors as one-line Problems: the field, a short prefix of the value, what is allowed.

Every body the REST API validates goes through here (the job request and the others, see
``gateways/rest/errors.py``), and so does a job read from a file or a chat message, so the CLI,
the API and the chat gateway all word a refusal the same way.
"""

from __future__ import annotations

import reprlib
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from tiercel.core.problems import MISSING, Problem


@dataclass(frozen=True, slots=True)
class Shown:
    """The start of a value too large or too deep to put in an error whole."""

    text: str

    def __str__(self) -> str:
        return self.text


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict = 3, 60, 60, 6, 6
# Failing only because of their type: when a union's other branch says more, that is the one to show.
_TYPE_ERRORS = {"string_type", "int_type", "float_type", "bool_type", "list_type", "dict_type", "none_required",
                "model_type", "model_attributes_type", "is_instance_of"}


def shown(value: object) -> object:
    """A value as an error may show it: scalars as they are (Problem cuts long strings), the rest briefly."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return Shown(_SHORT.repr(value))


def problem_from_errors(errors: Sequence[ErrorDetails], model: type[BaseModel] | None = None,
                        default_field: str = "job") -> Problem:
    """The first of pydantic's errors as a one-line Problem: the field, a short prefix of the value
    and what is allowed. ``model`` names the known fields and tells which fields are unions, whose
    branch names pydantic puts into an error's location."""
    err = _most_telling(errors)
    field, value = _where(err, model)
    field = field or default_field
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        known = ", ".join(model.model_fields) if model is not None else "see /docs"
        return Problem(field, shown(value), f"is not a known field (known fields: {known})")
    if kind == "missing":
        return Problem(field, MISSING, "is required")
    msg = str(err.get("msg", "is not valid"))
    if kind == "refused":
        return Problem(field, shown(value), msg)
    if kind in _TYPE_ERRORS:
        msg = " or ".join(e["msg"].removeprefix("Input should be ") for e in errors
                          if _where(e, model)[0] == field and e["type"] in _TYPE_ERRORS)
        msg = "should be " + msg
    return Problem(field, shown(value), "is not allowed: " + msg[0].lower() + msg[1:])


def _most_telling(errors: Sequence[ErrorDetails]) -> ErrorDetails:
    """The first error that is not about a type, if any: it comes from the union branch that the
    value's type chose, and says what is wrong with the value itself."""
    return next((e for e in errors if e.get("type") not in _TYPE_ERRORS), errors[0])


def _where(err: ErrorDetails, model: type[BaseModel] | None) -> tuple[str, object]:
    """The dotted field path of an error (``env.HOME``, ``command.2``) and the value to show."""
    loc = [p for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
    if loc and model is not None and isinstance(loc[0], str) and loc[0] in model.model_fields:
        annotation = model.model_fields[loc[0]].annotation
        if len(loc) > 1 and isinstance(loc[1], str) and _is_union(annotation):
            del loc[1]  # a branch name such as 'list[str]', not part of the request
    value = err.get("input")
    if loc and loc[-1] == "[key]":  # a bad key of a mapping: name the mapping, show the key
        value = loc[-2]
        loc = loc[:-2]
    return ".".join(str(p) for p in loc), value


def _is_union(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_union(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return len([a for a in get_args(annotation) if a is not type(None)]) > 1
    return False
