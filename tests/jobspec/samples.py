"""What the tests of job descriptions share: the seed's examples, descriptions using every attribute
Tiercel maps, the variables they are read with, and readers that insist on a description."""

from __future__ import annotations

from tiercel.jobspec.desc import standard_variables
from tiercel.jobspec.gram import JobDescription
from tiercel.jobspec.gt4 import parse_xml
from tiercel.jobspec.rsl import parse_rsl

ENV = standard_variables({"HOME": "/home/zding", "USER": "zding", "SCRATCH": "/scratch"})
BASE = {"shell": False, "append_index": False, "queue": 1}


def rsl(text: str) -> JobDescription:
    desc = parse_rsl(text, ENV)
    assert isinstance(desc, JobDescription), desc.message()
    return desc


def xml(text: str) -> JobDescription:
    desc = parse_xml(text, ENV)
    assert isinstance(desc, JobDescription), desc.message()
    return desc


# ---- the seed's examples ---------------------------------------------------------------------

DEMO3_RSL = """&(executable=/bin/echo)
 (directory=$(HOME))
 (arguments="this is a globusrun example")
 (stdout=stdout2)
"""

DEMO2_XML = """<job>
  <executable>/bin/echo</executable>
  <directory>${GLOBUS_USER_HOME}</directory>
  <argument>this is an example_string </argument>
  <argument>Globus was here</argument>
  <stdout>${GLOBUS_USER_HOME}/stdout</stdout>
  <stderr>${GLOBUS_USER_HOME}/stderr</stderr>
</job>
"""


# ---- every mapped attribute -------------------------------------------------------------------

FULL_RSL = """& (* every attribute Tiercel maps *)
  (rsl_substitution=(DATA $(HOME)/data)(OUT $(DATA)/out))
  (executable=$(DATA)/bin/sweep)
  (arguments=--in $(DATA)/in.txt "two words" 'it''s' "say ""hi"" twice" ^|a"b'c|)
  (directory=run)
  (environment=(OMP_NUM_THREADS 4)(LABEL "a b"))
  (count=8)
  (job_type=multiple)
  (queue=short)
  (max_wall_time=90)
  (maxMemory=2048)
  (stdout=$(OUT).$(LOGNAME))
  (stderr=err#.txt)
"""


FULL_XML = """<job>
  <executable>${SCRATCH}/bin/sweep</executable>
  <directory>run</directory>
  <argument>--in</argument>
  <argument></argument>
  <environment><name>OMP_NUM_THREADS</name><value>4</value></environment>
  <environment><name>EMPTY</name></environment>
  <count> 8 </count>
  <jobType>multiple</jobType>
  <queue>short</queue>
  <maxWallTime>90</maxWallTime>
  <maxMemory>2048</maxMemory>
  <stdout>out.${GLOBUS_USER_NAME}</stdout>
  <stderr>err.txt</stderr>
</job>"""
