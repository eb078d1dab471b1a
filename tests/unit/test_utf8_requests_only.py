"""The local server refuses a header or a body that is not UTF-8 with the API's own problem+json 400 (the same
mapping the Lambda resolvers use), before the app would fail decoding it."""

from __future__ import annotations

import asyncio
import json

from feedlocal.server import utf8_requests_only


async def _unreachable_app(scope, receive, send) -> None:
    raise AssertionError("a request that is not UTF-8 reached the app")


def answer(headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, dict[bytes, bytes], dict]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/events", "headers": headers}
    asyncio.run(utf8_requests_only(_unreachable_app)(scope, receive, send))
    start, body_message = sent
    return start["status"], dict(start["headers"]), json.loads(body_message["body"])


def test_a_header_that_is_not_utf8_gets_a_problem_json_400() -> None:
    status, headers, problem = answer([(b"x-client-name", b"caf\xe9")], b"{}")

    assert (status, headers[b"content-type"]) == (400, b"application/problem+json")
    assert (problem["status"], problem["detail"]) == (400, "the x-client-name header is not UTF-8 text")
    [error] = problem["errors"]
    assert (error["field"], error["type"]) == ("headers.x-client-name", "headers_encoding")


def test_a_body_that_is_not_utf8_gets_a_problem_json_400() -> None:
    status, headers, problem = answer([], b'{"events": ["\xff"]}')

    assert (status, headers[b"content-type"]) == (400, b"application/problem+json")
    assert problem["title"] == "Bad Request" and problem["detail"] == "the request body is not UTF-8 text"
    [error] = problem["errors"]
    assert (error["field"], error["type"]) == ("body", "body_encoding")
