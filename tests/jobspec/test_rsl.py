"""GT2 RSL job descriptions → JobRequest fields, and every way they can be wrong."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.jobspec.samples import BASE, DEMO3_RSL, ENV, FULL_RSL, rsl
from tiercel.core.problems import Problem
from tiercel.jobspec.gram import JobDescription
from tiercel.jobspec.rsl import parse_rsl

# ---- the seed's examples ---------------------------------------------------------------------


def test_demo3_rsl_runs_echo_in_home_and_names_stdout() -> None:
    desc = rsl(DEMO3_RSL)
    assert desc.kind == "rsl"
    assert desc.request == {**BASE, "command": ["/bin/echo", "this is a globusrun example"], "cwd": "/home/zding"}
    assert (desc.stdout, desc.stderr) == ("stdout2", None)


def test_demo3_without_the_leading_ampersand_reads_the_same() -> None:
    assert rsl(DEMO3_RSL.lstrip("&")) == rsl(DEMO3_RSL)


# ---- every mapped attribute -------------------------------------------------------------------


def test_every_rsl_attribute_maps_onto_a_job_request_field() -> None:
    desc = rsl(FULL_RSL)
    assert desc.request == {
        "command": ["/home/zding/data/bin/sweep", "--in", "/home/zding/data/in.txt", "two words", "it's",
                    'say "hi" twice', "a\"b'c"],
        "shell": False, "append_index": False,
        "cwd": "/home/zding/run",  # relative to $(HOME), as GRAM takes it
        "env": {"OMP_NUM_THREADS": "4", "LABEL": "a b"},
        "queue": 8,  # count: a job array of 8 tasks (jobType=multiple)
        "queue_name": "short",
        "walltime": 90 * 60,  # minutes
        "memory": 2048,  # megabytes
    }
    assert (desc.stdout, desc.stderr) == ("/home/zding/data/out.zding", "err.txt")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # attribute names ignore case and underscores
        ("&(EXECUTABLE=/bin/true)(MaxWallTime=1)", {"walltime": 60}),
        ("&(executable=/bin/true)(max_time=2)", {"walltime": 120}),
        ("&(executable=/bin/true)(Job_Type=SINGLE)", {}),
        # GRAM's jobType=single: one process on count CPUs
        ("&(executable=/bin/true)(jobType=single)(count=4)", {"cpus": 4}),
        ("&(executable=/bin/true)(count=3)", {"queue": 3}),
        ('&(executable=/bin/true)(count="3")', {"queue": 3}),
        # substitutions: $(NAME default), implied and explicit concatenation, nested sequences
        ("&(executable=$(NOPE /bin/true))", {}),
        ("&(executable=/bin/true)(arguments=$(HOME)/a x$(USER) $(USER)$(USER) a#b)",
         {"command": ["/bin/true", "/home/zding/a", "xzding", "zdingzding", "ab"]}),
        ("&(executable=/bin/true)(arguments=$(HOME) \"/a\")", {"command": ["/bin/true", "/home/zding", "/a"]}),
        ("&(executable=/bin/true)(arguments=\"\")", {"command": ["/bin/true", ""]}),
        ("&(executable=/bin/true)(directory=/abs)", {"cwd": "/abs"}),
        ("&(executable=/bin/true)(&(count=2))", {"queue": 2}),
        ("executable=/bin/true", {}),
        ("&(executable = /bin/true)\r\n(count = 2)", {"queue": 2}),
        ("&(rsl_substitution=(A 1))(rsl_substitution=(B $(A)2))(executable=/bin/true)(arguments=$(B))",
         {"command": ["/bin/true", "12"]}),
    ],
)
def test_rsl_table(text: str, expected: dict[str, Any]) -> None:
    assert rsl(text).request == {**BASE, "command": ["/bin/true"], **expected}


def test_rsl_substitution_overrides_the_environment() -> None:
    assert rsl("&(rsl_substitution=(HOME /elsewhere))(executable=$(HOME)/x)").request["command"] == ["/elsewhere/x"]


# ---- every error --------------------------------------------------------------------------------

SUPPORTED_RSL = "supported: executable, arguments, directory, environment, count, jobType, queue, maxWallTime"


@pytest.mark.parametrize(
    ("text", "field", "needle"),
    [
        # attributes Tiercel cannot honour, named, with what is supported
        ("&(executable=/bin/true)(hostCount=2)", "hostCount (line 1)", SUPPORTED_RSL),
        ("&(executable=/bin/true)\n(file_stage_in=(a b))", "file_stage_in (line 2)", "stages files of Gfarm only"),
        ("&(executable=/bin/true)(fileStageOut=(a gsiftp://h/a))", "fileStageOut (line 1)",
         "stages files of Gfarm only"),
        ("&(executable=/bin/true)(fileStageIn=(gfarm:///d/a b))", "fileStageIn (line 1)", "the file's own name, 'a'"),
        ("&(executable=/bin/true)(directory=/tmp)(fileStageIn=(gfarm:///d/a a))", "fileStageIn (line 1)",
         "cannot be given with directory"),
        ("&(executable=/bin/true)(fileCleanUp=(a))", "fileCleanUp (line 1)", "stages files of Gfarm only"),
        ("&(executable=/bin/true)(stdin=/dev/null)", "stdin (line 1)", "without standard input"),
        ("&(executable=/bin/true)(project=chem)", "project (line 1)", "no project accounts"),
        ("&(executable=/bin/true)(maxCpuTime=5)", "maxCpuTime (line 1)", "wall-clock time only"),
        ("&(executable=/bin/true)(minMemory=5)", "minMemory (line 1)", "maxMemory"),
        ("&(executable=/bin/true)(colour=red)", "colour (line 1)", "is not a job attribute Tiercel supports"),
        ("&(executable=/bin/true)(jobType=mpi)", "jobType (line 1)", "'mpi' is not supported"),
        ("&(executable=/bin/true)(jobType=condor)", "jobType (line 1)", "'condor' is not supported"),
        ("&(executable=/bin/true)(jobType=many)", "jobType (line 1)", "must be single or multiple"),
        # values
        ("&(arguments=x)", "executable", "is required"),
        ("&(executable=gsiftp://host/bin/x)", "executable (line 1)", "does not transfer files"),
        ("&(executable=/bin/true)(stdout=https://host/out)", "stdout (line 1)", "does not transfer files"),
        ("&(executable=/bin/true)(stdout=\"\")", "stdout (line 1)", "must not be empty"),
        ("&(executable=/bin/true)(count=0)", "count (line 1)", "'0' must be a whole number of tasks from 1"),
        ("&(executable=/bin/true)(count=two)", "count (line 1)", "whole number"),
        ("&(executable=/bin/true)(count=-1)", "count (line 1)", "whole number"),
        ("&(executable=/bin/true)(maxWallTime=1.5)", "maxWallTime (line 1)", "whole number of minutes"),
        ("&(executable=/bin/true)(maxMemory=4G)", "maxMemory (line 1)", "whole number of megabytes"),
        ("&(executable=/bin/true)(maxWallTime=1)(maxTime=1)", "maxTime (line 1)", "choose one"),
        ("&(executable=/bin/true)(queue=\"\")", "queue (line 1)", "queue name"),
        ("&(executable=/bin/true)(count=1)(COUNT=2)", "COUNT (line 1)", "given twice (first as count (line 1))"),
        ("&(executable=/bin/true /bin/false)", "executable (line 1)", "must be a single value"),
        ("&(executable=/bin/true)(directory=$(HOME) \"/x\")", "directory (line 1)", "join its parts with #"),
        ("&(executable=/bin/true)(arguments=(a b))", "arguments (line 1)", "not parenthesised lists"),
        ("&(executable=/bin/true)(environment=A 1)", "environment (line 1)", "must be pairs"),
        ("&(executable=/bin/true)(environment=(A 1 2))", "environment (line 1)", "must be pairs"),
        ("&(executable=/bin/true)(environment=(A=B 1))", "rsl line 1, column 39", "'=' is not expected here"),
        ("&(executable=/bin/true)(environment=(\"A=B\" 1))", "environment (line 1)", "not a variable name"),
        ("&(rsl_substitution=A)(executable=/bin/true)", "rsl_substitution (line 1)", "must be pairs"),
        # substitutions
        ("&(executable=$(NOPE))", "rsl line 1, column 14", "'$(NOPE)' is not defined"),
        ("&(executable=$(A B C))", "rsl line 1, column 14", "$(NAME) or $(NAME default)"),
        ("&(executable=$HOME)", "rsl line 1, column 15", "expected '(' after '$'"),
        ("&(executable=/bin/true)(arguments=(a)#b)", "rsl line 1, column 38", "'#' is not expected here"),
        # syntax, by line and column
        ("", "rsl line 1, column 1", "ends early"),
        ("&(executable=/bin/true", "rsl line 1, column 23", "ends early: expected ')'"),
        ("&(executable=/bin/true))", "rsl line 1, column 24", "expected the end of the description"),
        ("&(executable)", "rsl line 1, column 13", "expected '=' after the attribute name 'executable'"),
        ("&(executable=)", "rsl line 1, column 14", "expected a value"),
        ("&executable=/bin/true", "rsl line 1, column 2", "expected '(' after '&'"),
        ("&(executable=/bin/true)\n  (count>=2)", "rsl line 2, column 9", "'>=' is not supported for count"),
        ("&(executable=/bin/true)(count!2)", "rsl line 1, column 30", "'!' is not an operator"),
        ("&(executable=~/run.sh)", "rsl line 1, column 14", "'~' cannot appear unquoted"),
        ("&(executable=/bin/*)", "rsl line 1, column 19", "cannot appear unquoted"),
        ("&(executable=\"/bin/true)", "rsl line 1, column 14", 'never closed with "'),
        ("&(executable=/bin/true)^", "rsl line 1, column 24", "'^' must be followed"),
        ("&(executable=/bin/true) (* note", "rsl line 1, column 25", "never closed with '*)'"),
        ("|(executable=/bin/true)(executable=/bin/false)", "rsl line 1, column 1", "disjunctions (|)"),
        ("+(&(executable=/bin/true))(&(executable=/bin/false))", "rsl line 1, column 1", "multi-requests (+)"),
        ("&" + "(" * 40, "rsl line 1, column 35", "nests deeper than 32 levels"),
        ("&(arguments=" + "(" * 40, "rsl line 1, column 45", "nests deeper than 32 levels"),
        ("x" * 300_000, "rsl", "is too long"),
    ],
)
def test_rsl_errors_name_the_attribute_or_the_place(text: str, field: str, needle: str) -> None:
    problem = parse_rsl(text, ENV)
    assert isinstance(problem, Problem), problem
    assert problem.field == field, problem.message()
    assert needle in problem.message()
    assert problem.message().startswith(field + ":")


# ---- properties -----------------------------------------------------------------------------------

RSL_ALPHABET = st.sampled_from([*"&|+()=!<>\"'^*$#?~ \n\tab/_-.0123456789", "executable", "count", "$(HOME)", "(*",
                                "*)", "arguments"])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(RSL_ALPHABET, max_size=60).map("".join)))
def test_rsl_parser_answers_every_text_with_a_description_or_a_problem(text: str) -> None:
    result = parse_rsl(text, ENV)
    assert isinstance(result, (JobDescription, Problem))
    if isinstance(result, Problem):
        assert result.message()


WORDS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(WORDS, min_size=1, max_size=6))
def test_any_arguments_survive_rsl_quoting(args: list[str]) -> None:
    quoted = " ".join('"' + a.replace('"', '""') + '"' for a in args)
    assert rsl(f"&(executable=/bin/true)(arguments={quoted})").request["command"] == ["/bin/true", *args]


# ---- substitution is bounded before it is built ------------------------------------------------


def nested_definitions(levels: int) -> str:
    """Each rsl_substitution repeats the one before ten times: V(k) is 10**k characters."""
    defs = "(V0 x)" + "".join(f"(V{k} " + f"$(V{k - 1})" * 10 + ")" for k in range(1, levels))
    return f"&(rsl_substitution={defs})(executable=/bin/echo)(arguments=$(V{levels - 1}))"


def test_nested_definitions_are_refused_naming_the_variable_and_the_limit_without_building_them() -> None:
    import tracemalloc

    text = nested_definitions(8)  # V7 would be 10,000,000 characters
    assert len(text) < 500
    tracemalloc.start()
    try:
        problem = parse_rsl(text, ENV)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(problem, Problem), "a 10-million-character expansion was accepted"
    message = problem.message()
    assert problem.field.startswith("rsl line 1, column ")
    assert re.search(r"'\$\(V\d\)' expands to [\d,]+ characters in the definition of V\d", message), message
    assert re.search(r"at most [\d,]+ characters", message), message
    assert peak < 4_000_000, f"{peak:,} bytes traced: the expansion was built before it was refused"


def test_the_issues_460_byte_description_is_refused_at_once() -> None:
    import time

    text = nested_definitions(10)  # V9 would be 10**9 characters
    started = time.perf_counter()
    problem = parse_rsl(text, ENV)
    assert isinstance(problem, Problem) and "the definition of V" in problem.message()
    assert time.perf_counter() - started < 1


def test_definitions_used_many_times_within_the_limit_still_expand() -> None:
    desc = rsl(nested_definitions(4))  # V3: 1,000 characters, ten times V2, ten times V1
    assert desc.request["command"] == ["/bin/echo", "x" * 1000]
    many = "&(rsl_substitution=(A " + "y" * 1000 + "))(executable=/bin/echo)(arguments=" + "$(A) " * 200 + ")"
    assert rsl(many).request["command"] == ["/bin/echo", *["y" * 1000] * 200]


def test_an_attribute_that_substitutes_too_much_is_named() -> None:
    text = "&(rsl_substitution=(A " + "y" * 100_000 + "))(executable=/bin/echo)(arguments=" + "$(A)#" * 40 + "z)"
    problem = parse_rsl(text, ENV)
    assert isinstance(problem, Problem)
    assert "'$(A)' expands to 100,000 characters in arguments" in problem.message()


def test_file_staging_in_gfarm_becomes_the_jobs_inputs_and_outputs() -> None:
    desc = parse_rsl("&(executable=/usr/bin/meme)(count=3)"
                     "(fileStageIn=(gfarm:///in/seq_{index}.fa seq_{index}.fa)(gfarm:///db/motifs.db motifs.db))"
                     "(fileStageOut=(meme_{index}.txt gfarm:///out/meme_{index}.txt))", {})
    assert not isinstance(desc, Problem), desc.message()
    assert desc.request["inputs"] == ["gfarm:///in/seq_{index}.fa", "gfarm:///db/motifs.db"]
    assert desc.request["outputs"] == ["gfarm:///out/meme_{index}.txt"]
