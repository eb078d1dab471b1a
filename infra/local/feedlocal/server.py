"""The local HTTP server: every route of the three functions in one ASGI app (HttpResolverLocal)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

from feedcore.api.problems import undecodable_request
from feedcore.api.resolvers import local_resolver

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3000

Asgi = Callable[[dict[str, Any], Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


def utf8_requests_only(app: Asgi) -> Asgi:
    """Answer 400 to a header or a body that is not UTF-8, as API Gateway's resolver does for a body;
    HttpResolverLocal would fail decoding either before any error handler runs (a 500)."""

    async def refuse(send, field: str, detail: str, exc: UnicodeDecodeError) -> None:
        response = undecodable_request(field, detail, exc)
        headers = [(name.lower().encode(), str(value).encode()) for name, value in response.headers.items()]
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": response.body.encode()})

    async def guarded(scope: dict[str, Any], receive, send) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        for name, value in scope["headers"]:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError as exc:
                header = name.decode("latin-1")
                return await refuse(send, f"headers.{header}", f"the {header} header is not UTF-8 text", exc)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return await refuse(send, "body", "the request body is not UTF-8 text", exc)

        async def replay() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        return await app(scope, replay, send)

    return guarded


def one_request_at_a_time(app: Asgi) -> Asgi:
    """Let requests into the app one at a time. HttpResolverLocal runs each synchronous middleware of a request
    (authorization, validation) in a worker of the event loop's default thread pool, where it waits for the next
    one to run in another: as many requests at once as the pool has workers (6 on 2 vCPUs) each held one and
    waited for a second, and the server hung for good. Its routes run on the event loop itself, so requests never
    ran side by side anyway."""
    admitted = asyncio.Lock()

    async def guarded(scope: dict[str, Any], receive, send) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        async with admitted:
            return await app(scope, receive, send)

    return guarded


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the API until interrupted."""
    app = utf8_requests_only(one_request_at_a_time(local_resolver()))
    uvicorn.run(app, host=host, port=port, log_level="warning")
