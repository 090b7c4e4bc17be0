"""CSF4 job descriptions of either format: told apart by content, read with the Globus variables,
and what they map to is a valid job."""

from __future__ import annotations

from tests.jobspec.samples import DEMO2_XML, DEMO3_RSL, ENV, FULL_RSL, FULL_XML, rsl, xml
from tiercel.core.model import JobSpec
from tiercel.jobspec.desc import parse_description, standard_variables
from tiercel.jobspec.request import spec_from_mapping


def test_descriptions_are_told_apart_by_content() -> None:
    assert parse_description(DEMO2_XML, ENV) == xml(DEMO2_XML)
    assert parse_description(DEMO3_RSL, ENV) == rsl(DEMO3_RSL)
    assert parse_description("\ufeff" + DEMO3_RSL, ENV) == rsl(DEMO3_RSL)


def test_the_mapped_requests_are_valid_jobs() -> None:
    for desc in (rsl(DEMO3_RSL), xml(DEMO2_XML), rsl(FULL_RSL), xml(FULL_XML)):
        spec = spec_from_mapping({**desc.request, "name": "j"})
        assert isinstance(spec, JobSpec), spec
        assert not spec.shell and not spec.append_index


def test_standard_variables_name_the_globus_ones() -> None:
    env = standard_variables({"HOME": "/h", "LOGNAME": "me"})
    assert env["GLOBUS_USER_HOME"] == "/h" and env["GLOBUS_USER_NAME"] == "me" and env["LOGNAME"] == "me"
    assert standard_variables({"HOME": "/h", "GLOBUS_USER_HOME": "/g"})["GLOBUS_USER_HOME"] == "/g"
