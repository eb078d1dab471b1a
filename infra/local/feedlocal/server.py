"""The local HTTP server: every route of the three functions in one ASGI app (HttpResolverLocal)."""

from __future__ import annotations

import uvicorn

from feedcore.api.resolvers import local_resolver

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3000


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the API until interrupted."""
    uvicorn.run(local_resolver(), host=host, port=port, log_level="warning")
