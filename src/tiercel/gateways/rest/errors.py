"""How the REST API says no: one error shape, the body limit, and the OpenAPI document's errors.

Every error is JSON ``{"error": "...", "field": "..."}`` with one line a person can act on,
FastAPI's and Starlette's own errors included; the document names every status a route
can answer, with that shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tiercel.core.problems import Problem
from tiercel.jobspec.errors import problem_from_errors
from tiercel.manager.shell import SubmitRefused, Unavailable

MAX_BODY = 1024 * 1024
MAX_JOB_BODY = 256 * 1024 * 1024  # a job submission: a sweep's entries can be a million lines and more


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field

    @staticmethod
    def of(problem: Problem, status: int = 400) -> ApiError:
        return ApiError(status, problem.message(), problem.field)


def body_limit(scope: Scope) -> int:
    """The largest body of a request: MAX_BODY, and MAX_JOB_BODY for a job's or a workflow's submission."""
    submits = scope.get("method") == "POST" and scope.get("path") in ("/v1/jobs", "/v1/workflows")
    return MAX_JOB_BODY if submits else MAX_BODY


class BodyLimit:
    """Refuse request bodies over their limit (MAX_BODY, larger for a job), counted as they arrive.

    The body is read here, whole, before the app sees it: a limit hit while the app reads would
    surface inside FastAPI's body parsing, which turns any error there into a 400. Reading at most
    MAX_BODY bytes first costs nothing the app would not have buffered itself.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(f"{int(declared)} bytes", limit, send)
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return  # the client left before it finished sending: nobody to answer
            chunks.append(msg.get("body", b""))
            seen += len(chunks[-1])
            if seen > limit:
                await _too_large(f"more than {limit} bytes", limit, send)
                return
            if not msg.get("more_body", False):
                break
        whole: Message | None = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        async def replay() -> Message:
            nonlocal whole
            if whole is not None:
                msg, whole = whole, None
                return msg
            return await receive()  # after the body: a disconnect, which streaming answers listen for

        await self.app(scope, replay, send)


async def _too_large(size: str, limit: int, send: Send) -> None:
    body = json.dumps({"error": f"request: body of {size} is too large; at most {limit} bytes are allowed",
                       "field": "request"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class ErrorBody(BaseModel):
    """Every error the API answers: one line a person can act on, and the field it is about."""

    error: str = Field(description="the field, a short prefix of the value and what is allowed")
    field: str | None = Field(description="the request field at fault, or token, job, task, request, ...")


# Why each error status is answered; every route lists those it can answer.
_WHY = {
    400: "the body is not JSON (malformed, not UTF-8, or nested too deeply)",
    401: "no token, or one the manager does not know",
    403: "the token's role may not do this",
    404: "no such job, task or reservation (or not yours)",
    409: "it conflicts with what exists (slots already reserved, a name in use)",
    413: f"the body is larger than {MAX_BODY} bytes ({MAX_JOB_BODY} for a job's or a workflow's submission)",
    422: "a field's value is not allowed",
    502: "the site's batch system refused",
    507: "the manager's disk is full: new work is refused (reads still work)",
}


_LINE_REFUSED = "the request is not one the HTTP server can read (a URL too long for it, say)"


def answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for the error statuses a route answers besides those every route may."""
    return {status: {"model": ErrorBody, "description": _WHY[status]} for status in statuses}



def install(app: FastAPI) -> None:
    """The body limit, the exception handlers that answer in the error shape, and the document's errors."""
    app.add_middleware(BodyLimit)
    _describe_errors(app)

    @app.exception_handler(ApiError)
    async def _apierror(_: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if errors and errors[0].get("type") == "json_invalid":
            loc = errors[0].get("loc", ())
            where = f" at character {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
            why = errors[0].get("ctx", {}).get("error", "malformed")
            return error(400, f"request: body is not valid JSON: {why}{where}", "request")
        if errors and errors[0].get("loc") == ("body",):  # about the body as a whole
            return error(422, "request: body must be a JSON object (Content-Type: application/json)", "request")
        problem = problem_from_errors(errors, _body_model(request), default_field="request")
        return error(422, problem.message(), problem.field)

    @app.exception_handler(Unavailable)
    async def _unavailable(_: Request, exc: Unavailable) -> JSONResponse:
        return error(507, str(exc), "request")

    @app.exception_handler(SubmitRefused)
    async def _refused(_: Request, exc: SubmitRefused) -> JSONResponse:
        return error(422, str(exc), exc.problem.field)

    @app.exception_handler(HTTPException)
    async def _httperror(request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, _http_message(request, exc), "request", exc.headers)


def error(status: int, message: str, field: str | None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)


def _shown(value: str) -> str:
    """A value as an error shows it: its start only, so an error never echoes a large body back."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _http_message(request: Request, exc: HTTPException) -> str:
    """Starlette's and FastAPI's own errors, said the way this API says its errors."""
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return f"request: body is not UTF-8 text (byte 0x{cause.object[cause.start]:02x} at position {cause.start})"
    if isinstance(cause, RecursionError):
        return "request: body nests arrays or objects too deeply to be read"
    if exc.status_code == 404:
        return f"request: {_shown(request.url.path)} is not an endpoint of this manager (see /docs)"
    if exc.status_code == 405:
        return f"request: {request.method} is not allowed on {_shown(request.url.path)}"
    if exc.status_code == 400 and cause is not None:
        return f"request: body cannot be read: {type(cause).__name__}"
    return f"request: {exc.detail}"


def _body_model(request: Request) -> type[BaseModel] | None:
    """The model of the body the request's route reads, if any: its fields are the known ones."""
    field = getattr(request.scope.get("route"), "body_field", None)
    model = getattr(getattr(field, "field_info", None), "annotation", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None



def _describe_errors(app: FastAPI) -> None:
    """Add to the OpenAPI document the errors every route may answer, whoever wrote the route: 401
    (every route takes a token), 422 (a parameter or body not allowed) and, for a body, 400 and 413;
    all with ErrorBody, which the exception handlers above answer in place of FastAPI's own shapes."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.setdefault("responses", {})
                statuses = [401]
                if operation.get("parameters") or operation.get("requestBody"):
                    statuses.append(422)
                if operation.get("requestBody"):
                    statuses += [400, 413]
                for status in statuses:
                    responses.setdefault(str(status), {"description": _WHY[status]})
                for status, response in responses.items():
                    if status.isdigit() and int(status) in _WHY:  # JSON even where the route answers text
                        response["content"] = error
                if operation.get("parameters") and "400" not in responses:
                    # a request line the HTTP server itself cannot take (a URL of many kilobytes) is
                    # answered by the server, in plain text, before any route sees it
                    responses["400"] = {"description": _LINE_REFUSED,
                                        "content": {"text/plain": {"schema": {"type": "string"}}}}
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ErrorBody", ErrorBody.model_json_schema())
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
