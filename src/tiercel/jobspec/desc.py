"""CSF4 job descriptions: Globus GT2 RSL and GT4 (WS GRAM) XML, read into JobRequest fields.

CSF4 users describe a job once and submit it by name (``csf-job-create -rsl job.rsl -name j1``).
The descriptions are the Globus ones, and this is where a caller reads one without knowing which:

- **GT2 RSL** (``rsl.py``): ``&(executable=/bin/echo)(directory=$(HOME))(arguments="a b" c)(stdout=out)``,
  with ``$(NAME)`` substitutions;
- **GT4 XML** (``gt4.py``): ``<job><executable>..</executable><argument>..</argument>..</job>`` with
  ``${GLOBUS_USER_HOME}``-style substitutions, in or out of the job-description namespace.

Both map onto what Tiercel's JobRequest knows in ``gram.py``, which also refuses by name every
attribute Tiercel cannot honour and bounds what substitution may add. Everything here is pure:
text and the variables to substitute come in, a ``JobDescription`` or a ``Problem`` naming the
attribute (or line and column) comes out.
"""

from __future__ import annotations

from collections.abc import Mapping

from tiercel.core.problems import Problem
from tiercel.jobspec.gram import JobDescription
from tiercel.jobspec.gt4 import parse_xml
from tiercel.jobspec.rsl import parse_rsl


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
