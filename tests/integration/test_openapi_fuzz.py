"""The OpenAPI document against a live manager: generated requests, valid and invalid, must get
only answers the document describes (status code, content type, body), and never a 5xx.

Bounded and repeatable: derandomized generation and a few dozen cases per operation and mode.
Hypothesis is driven here directly rather than through schemathesis's pytest plug-in, whose
lazy-fixture loader does not work with the pytest in use.
"""

from __future__ import annotations

import time

import httpx
import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 12  # per operation and mode (valid, invalid): a few hundred requests in all


def test_every_answer_is_described_by_the_openapi_document(cluster: Cluster) -> None:
    config = schemathesis.Config.from_dict({"base-url": cluster.url})
    api = schemathesis.openapi.from_url(cluster.url + "/openapi.json", config=config)
    auth = {"Authorization": f"Bearer {cluster.admin_token}"}
    failures: list[str] = []
    sent = 0
    started = time.monotonic()
    for result in api.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            def one(case: schemathesis.Case) -> None:
                nonlocal sent
                sent += 1
                case.call_and_validate(headers=auth, checks=CHECKS)

            try:
                one()
            except Unsatisfiable:
                pass  # nothing of it can be made invalid (no parameters, no body)
            except (Exception, BaseExceptionGroup) as exc:  # every operation is tried, all failures reported
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
    assert sent >= 100, f"only {sent} requests were generated"
    assert time.monotonic() - started < 120
    with cluster.client() as c:  # and the manager is still serving
        assert c.json("GET", "/healthz")["status"] == "ok"


def test_the_document_names_every_error_and_refuses_what_the_server_refuses(cluster: Cluster) -> None:
    with cluster.client() as c:
        doc = c.json("GET", "/openapi.json")
    error = {"$ref": "#/components/schemas/ErrorBody"}
    submit = doc["paths"]["/v1/jobs"]["post"]["responses"]
    for status in ("400", "401", "403", "413", "422"):
        assert submit[status]["content"]["application/json"]["schema"] == error, status
    logs = doc["paths"]["/v1/jobs/{job_id}/logs"]["get"]["responses"]
    assert list(logs["200"]["content"]) == ["text/plain", "application/x-ndjson"]  # format=text or jsonl
    assert logs["404"]["content"]["application/json"]["schema"] == error
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # FastAPI's shape, which is never answered

    job = jsonschema_rs.validator_for(doc["components"]["schemas"]["JobRequest"])
    accepted = {"command": "true", "queue": 5, "shell": False, "cleanup": "rm a\nrm b"}
    assert job.is_valid(accepted)
    auth = {"Authorization": f"Bearer {cluster.admin_token}"}
    with httpx.Client(base_url=cluster.url, headers=auth) as http:
        assert http.post("/v1/jobs", json=accepted).status_code == 201
        for refused in ({"command": ""}, {"command": []}, {"command": "x", "queue": "5"},
                        {"command": "x", "queue": True}, {"command": "x", "retries": "1"},
                        {"command": "x", "shell": "yes"}, {"command": "x", "cleanup": "a\u0000"},
                        {"command": "x", "name": "a\nb"}):
            assert not job.is_valid(refused), refused  # the document refuses it
            assert http.post("/v1/jobs", json=refused).status_code == 422, refused  # and so does the server
