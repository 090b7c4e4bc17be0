"""GT4 XML job descriptions → JobRequest fields, and every way they can be wrong."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.jobspec.samples import BASE, DEMO2_XML, ENV, FULL_XML, xml
from tiercel.core.problems import Problem
from tiercel.jobspec.gram import JobDescription
from tiercel.jobspec.gt4 import parse_xml

# ---- the seed's examples ---------------------------------------------------------------------


def test_demo2_xml_keeps_each_argument_as_written() -> None:
    desc = xml(DEMO2_XML)
    assert desc.kind == "xml"
    assert desc.request == {**BASE, "command": ["/bin/echo", "this is an example_string ", "Globus was here"],
                            "cwd": "/home/zding"}
    assert (desc.stdout, desc.stderr) == ("/home/zding/stdout", "/home/zding/stderr")


def test_xml_in_the_job_description_namespace() -> None:
    text = ('<?xml version="1.0"?><rsl:job xmlns:rsl="http://www.globus.org/namespaces/2004/10/gram/job/description">'
            "<rsl:executable>/bin/true</rsl:executable><rsl:count>2</rsl:count></rsl:job>")
    assert xml(text).request == {**BASE, "command": ["/bin/true"], "queue": 2}


# ---- every mapped attribute -------------------------------------------------------------------


def test_every_xml_element_maps_onto_a_job_request_field() -> None:
    desc = xml(FULL_XML)
    assert desc.request == {
        "command": ["/scratch/bin/sweep", "--in", ""], "shell": False, "append_index": False,
        "cwd": "/home/zding/run", "env": {"OMP_NUM_THREADS": "4", "EMPTY": ""}, "queue": 8,
        "queue_name": "short", "walltime": 5400, "memory": 2048,
    }
    assert (desc.stdout, desc.stderr) == ("out.zding", "err.txt")


# ---- every error --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "needle"),
    [
        ("<job><executable>/bin/true</executable><hostCount>2</hostCount></job>", "<hostCount>",
         "supported: executable, argument, directory, environment, count, jobType"),
        ("<job><executable>/bin/true</executable><fileStageIn><transfer><sourceUrl>gsiftp://h/a</sourceUrl>"
         "</transfer></fileStageIn></job>", "<fileStageIn>", "one <sourceUrl> and one <destinationUrl>"),
        ("<job><executable>/bin/true</executable><fileStageIn><transfer><sourceUrl>gsiftp://h/a</sourceUrl>"
         "<destinationUrl>a</destinationUrl></transfer></fileStageIn></job>", "<fileStageIn>",
         "stages files of Gfarm only"),
        ("<job><executable>/bin/true</executable><fileCleanUp/></job>", "<fileCleanUp>", "stages files of Gfarm only"),
        ("<job><executable>/bin/true</executable><extensions><a/></extensions></job>", "<extensions>",
         "is not a job attribute Tiercel supports"),
        ("<job><executable>/bin/true</executable><stdin>in</stdin></job>", "<stdin>", "without standard input"),
        ("<job><executable>/bin/true</executable><project>p</project></job>", "<project>", "no project accounts"),
        ("<job><executable>/bin/true</executable><jobType>mpi</jobType></job>", "<jobType>", "not supported"),
        ("<job><executable>/bin/true</executable><rsl_substitution/></job>", "<rsl_substitution>", "not a job attr"),
        ("<job><executable>/bin/true</executable><arguments>a b</arguments></job>", "<arguments>", "<argument>"),
        ("<job><argument>x</argument></job>", "executable", "is required: <executable>"),
        ("<job><executable>/bin/true</executable><executable>/bin/false</executable></job>", "<executable>",
         "given twice"),
        ("<job><executable>/bin/true</executable><count>lots</count></job>", "<count>", "whole number of tasks"),
        ("<job><executable><path>/bin/true</path></executable></job>", "<executable>", "must hold text"),
        ("<job><executable>/bin/true</executable><environment><value>1</value></environment></job>",
         "<environment>", "one <name> and one <value>"),
        ("<job><executable>/bin/true</executable><environment><name>A</name><name>B</name></environment></job>",
         "<environment>", "one <name> and one <value>"),
        ("<job><executable>${NOPE}</executable></job>", "<executable>", "'${NOPE}' is not defined"),
        ("<job><executable>${HOME</executable></job>", "<executable>", "never closed with '}'"),
        ("<job><executable>${1x}</executable></job>", "<executable>", "is not a substitution"),
        ("<job>text<executable>/bin/true</executable></job>", "<job>", "no loose text"),
        ("<multiJob><job/></multiJob>", "<multiJob>", "one <job> per file"),
        ("<task/>", "<task>", "the outermost element must be <job>"),
        ("<job><executable>/bin/true</executable>\n</jobb>", "xml line 2, column 3", "mismatched tag"),
        ("<job>", "xml line 1, column 6", "no element found"),
        ("", "xml line 1, column 1", "no element found"),
        ('<!DOCTYPE job [<!ENTITY e "/bin/true">]><job><executable>&e;</executable></job>', "xml",
         "must not declare a DOCTYPE"),
        ('<!DOCTYPE job SYSTEM "file:///etc/passwd"><job/>', "xml", "must not declare a DOCTYPE"),
        ("<job>" + " " * 300_000 + "</job>", "xml", "is too long"),
    ],
)
def test_xml_errors_name_the_element_or_the_place(text: str, field: str, needle: str) -> None:
    problem = parse_xml(text, ENV)
    assert isinstance(problem, Problem), problem
    assert problem.field == field, problem.message()
    assert needle in problem.message()


# ---- properties -----------------------------------------------------------------------------------

XML_PIECES = st.sampled_from(["<job>", "</job>", "<executable>", "</executable>", "/bin/true", "<argument>",
                              "</argument>", "<count>", "</count>", "3", "${HOME}", "${", "<!DOCTYPE x>", "&amp;",
                              "<environment>", "</environment>", "<name>", "</name>", "<", ">", " "])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(XML_PIECES, max_size=40).map("".join)))
def test_xml_parser_answers_every_text_with_a_description_or_a_problem(text: str) -> None:
    result = parse_xml(text, ENV)
    assert isinstance(result, (JobDescription, Problem))


# ---- substitution is bounded before it is built ------------------------------------------------


def test_xml_substitutions_of_a_large_variable_are_bounded_too() -> None:
    env = {**ENV, "BIG": "b" * 100_000}
    text = "<job><executable>/bin/echo</executable><argument>" + "${BIG}" * 40 + "</argument></job>"
    problem = parse_xml(text, env)
    assert isinstance(problem, Problem), "4,000,000 characters of substitution were accepted"
    assert problem.field == "<argument>"
    assert "'${BIG}' expands to 100,000 characters" in problem.message()
    assert "at most" in problem.message()
    assert isinstance(parse_xml(text.replace("${BIG}" * 40, "${BIG}" * 3), env), JobDescription)


def test_file_staging_in_gfarm_becomes_the_jobs_inputs_and_outputs() -> None:
    desc = parse_xml("<job><executable>/usr/bin/meme</executable><count>2</count>"
                     "<fileStageIn><transfer><sourceUrl>gfarm:///in/seq_{index}.fa</sourceUrl>"
                     "<destinationUrl>file:///${GLOBUS_USER_HOME}/seq_{index}.fa</destinationUrl></transfer>"
                     "</fileStageIn><fileStageOut><transfer><sourceUrl>file:///${GLOBUS_USER_HOME}/o_{index}.txt"
                     "</sourceUrl><destinationUrl>gfarm:///out/o_{index}.txt</destinationUrl></transfer>"
                     "</fileStageOut></job>", ENV)
    assert not isinstance(desc, Problem), desc.message()
    assert desc.request["inputs"] == ["gfarm:///in/seq_{index}.fa"]
    assert desc.request["outputs"] == ["gfarm:///out/o_{index}.txt"]
