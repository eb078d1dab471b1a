"""Lambda SnapStart (the feed function in template.yaml): Lambda initializes the function once, when a version is
published, snapshots its memory, and starts new containers from that snapshot instead of initializing each.

Before the snapshot, the hooks do what the first request would otherwise do: build the route's validation (by
resolving one request that validation rejects: no database, no AWS call) and open the database connection
(psycopg's connection code; in the stack, boto3 and the RDS client that signs the IAM token). After each
restore they drop that connection and client, so the first request connects afresh: a socket does not
survive a snapshot, and a token or credentials made before it may have expired.

`snapshot_restore_py` comes with Lambda's Python runtimes (locally, with the dev extras); outside SnapStart the
hooks are registered and never run.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from snapshot_restore_py import register_after_restore, register_before_snapshot

from feedcore.db.connection import forget_cached_connection, open_cached_connection
from feedcore.errors import FeedError
from feedcore.observability import logger


def prime_before_snapshot(app: ApiGatewayResolver, rejected_request: dict[str, Any]) -> None:
    """Resolve `rejected_request` (one that validation turns away) and open the database connection. A database
    that cannot be reached is logged, not raised: it must not fail the publication of a version."""
    response = app.resolve(rejected_request, None)  # type: ignore[arg-type]  # no Lambda context before a snapshot
    if response["statusCode"] != 422:
        logger.warning("the priming request was not rejected by validation", extra={"status": response["statusCode"]})
    try:
        open_cached_connection()
    except FeedError as exc:
        logger.warning("no database connection before the snapshot", extra={"error": str(exc)})


def register_snapstart_hooks(app: ApiGatewayResolver, rejected_request: dict[str, Any]) -> None:
    """Prime `app` before Lambda snapshots the container; drop the connection after each restore."""
    register_before_snapshot(prime_before_snapshot, app, rejected_request)
    register_after_restore(forget_cached_connection)
