"""One database connection per container (per thread locally): made on first use, replaced when broken.

Connections are made with `prepare_threshold=None` and no session state so they work through RDS Proxy.
A statement whose outcome the caller does not need to answer (recording a feed) can be sent without waiting
for it (`send_without_waiting`); its outcome is read before the connection's next use.

The server ends a statement at its `statement_timeout`, but only a server that runs: one that stopped answering
(a hung host, a failover behind RDS Proxy, which holds requests up to its borrow timeout) would keep the client
waiting until Lambda kills it. So every wait for an answer is bounded on the client too, by the statement
timeout in force and a grace period (`BoundedConnection`); past it the connection is closed and the request
gets what the database being unavailable gives (a degraded feed, a 503).
"""

from __future__ import annotations

import select
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from time import monotonic

import psycopg
from aws_lambda_powertools.metrics import MetricUnit
from msgspec import Struct
from psycopg import pq, sql
from psycopg._queries import PostgresQuery
from psycopg.adapt import Transformer
from psycopg.conninfo import make_conninfo

from feedcore.errors import ConfigurationError, DatabaseUnavailable, LockWaitTimedOut
from feedcore.observability import logger, metrics
from feedcore.settings import DatabaseSettings, database_settings

_cache = threading.local()
# How long past the statement timeout an answer is awaited before the connection is given up as lost (the
# server ends the statement at its timeout; this covers the network).
UNCONFIRMED_GRACE_S = 1.0
# How long a request waits, past its deadline, for the server to take the cancel of a statement it no longer awaits
# (a connection of its own, a TCP and TLS handshake away: ~1.5 ms locally over a Unix socket, 2026-11-28).
CANCEL_WITHIN_S = 0.2


class BoundedConnection(psycopg.Connection):
    """A connection whose every wait for the server ends after `answer_within_s` seconds, and by `answer_by`
    (a `monotonic()` time) when set, and by the deadline of the request its thread serves (`answers_by`): then it
    is closed and psycopg.OperationalError raised. `answer_within_s` is set from the statement timeout it is made
    with, and for a transaction that sets its own (`bound_transaction`); `answer_by` by a caller with a deadline
    for several statements."""

    answer_within_s: float | None = None
    answer_by: float | None = None

    def wait(self, gen, interval: float = 0.1, timeout: float | None = None):  # noqa: ANN001, ANN201 (psycopg's)
        bound = self.answer_within_s if timeout is None else timeout
        by_deadline = False  # whether a deadline bounds this wait more than the answer's own bound
        if (answer_by := _earliest(self.answer_by, _request_deadline())) is not None:
            left = max(answer_by - monotonic(), 0.0)
            if bound is None or left < bound:
                bound, by_deadline = left, True
        try:
            return super().wait(gen, interval, bound)
        except psycopg.errors._WaitTimeout as exc:  # psycopg's own, raised only for the timeout given here
            if by_deadline:  # the statement may run on up to its statement timeout, for nobody
                self._cancel_statement()
            self.close()  # a statement may still be running: nothing else can follow it on this connection
            raise psycopg.OperationalError(f"no answer from the database within {bound:.1f} s") from exc

    def _cancel_statement(self) -> None:
        """Ask the server to end the statement running on this connection, waiting CANCEL_WITHIN_S at most. Closing
        the connection does not end it: a server notices a closed socket only when it next reads or writes it. Not
        through RDS Proxy, which gives no cancel key (its clients cannot cancel: the statement ends at its timeout)."""
        if not self.pgconn.backend_pid:
            return
        try:
            self.cancel_safe(timeout=CANCEL_WITHIN_S)
        except psycopg.Error as exc:  # the cancel's own connection failed or timed out: the statement runs on
            logger.warning("could not cancel a statement nobody waits for", extra={"error": str(exc)})


def _earliest(*moments: float | None) -> float | None:
    return min((moment for moment in moments if moment is not None), default=None)


def _request_deadline() -> float | None:
    return getattr(_cache, "request_deadline", None)


@contextmanager
def answers_by(deadline: float) -> Iterator[None]:
    """Within the block, this thread's waits for the database — answers on its connections, the outcome of a
    statement sent without waiting — end by `deadline` (a `monotonic()` time), however many there are: the budget of
    a request that needs several answers, each within its own bound. A wait cut short cancels its statement (it
    would run on to its statement timeout otherwise) and closes its connection, and the request gets what the
    database being unavailable gives (a degraded feed). Connecting keeps its own
    timeout (DB_CONNECT_TIMEOUT_S). Within a block of its own, the earlier deadline holds; the outer one again after."""
    outer = _request_deadline()
    _cache.request_deadline = _earliest(deadline, outer)
    try:
        yield
    finally:
        _cache.request_deadline = outer


def answer_bound_s(statement_timeout_ms: int) -> float:
    """How long the client waits for an answer under `statement_timeout_ms`."""
    return statement_timeout_ms / 1000 + UNCONFIRMED_GRACE_S


def bound_transaction(conn: psycopg.Connection, timeout_ms: int) -> None:
    """Bound the current transaction's statements and idle time by `timeout_ms` on the server, and the client's
    waits for their answers by `timeout_ms` and the grace (for a transaction that needs more, or less, than the
    connection's own timeout); `run` restores the connection's own client bound when the transaction ends."""
    if isinstance(conn, BoundedConnection):
        conn.answer_within_s = answer_bound_s(timeout_ms)
    conn.execute(
        """
        SELECT set_config('statement_timeout', %(timeout)s, true),
               set_config('idle_in_transaction_session_timeout', %(timeout)s, true)
        """,
        {"timeout": str(timeout_ms)},
    )


def wait_for_lock(conn: psycopg.Connection, query: str, params: tuple) -> None:
    """Run `query`, a statement that waits for a lock; raises LockWaitTimedOut when the transaction's statement
    timeout ends the wait."""
    try:
        conn.execute(query, params)
    except psycopg.errors.QueryCanceled as exc:
        raise LockWaitTimedOut(f"gave up waiting for a lock: {exc}") from exc


@lru_cache
def _rds_client():
    import boto3

    return boto3.client("rds")


def iam_auth_token(settings: DatabaseSettings) -> str:
    """A 15-minute RDS IAM authentication token for DB_USER at DB_HOST:DB_PORT, signed locally with the
    function's role (no network call); the role needs rds-db:connect on that user."""
    from botocore.exceptions import BotoCoreError

    try:
        return _rds_client().generate_db_auth_token(
            DBHostname=settings.db_host, Port=settings.db_port, DBUsername=settings.db_user
        )
    except BotoCoreError as exc:  # no credentials or no region: the deployment, not the database
        raise ConfigurationError(f"cannot sign a database token: {exc}") from exc


def connection_url(settings: DatabaseSettings) -> str:
    """The libpq URL from DATABASE_URL; else RDS Proxy with an IAM token (DB_IAM_AUTH); else the Secrets
    Manager secret named by DB_SECRET_ARN (the instance's DB_HOST, DB_PORT and DB_NAME where it names none)."""
    if settings.through_rds_proxy:
        return make_conninfo(
            host=settings.db_host,
            port=str(settings.db_port),
            user=settings.db_user,
            password=iam_auth_token(settings),
            dbname=settings.db_name,
            # RDS Proxy refuses IAM authentication without TLS (RequireTLS in the template).
            sslmode="require",
        )
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    if not settings.db_secret_arn:
        raise ConfigurationError("no database configured: set DATABASE_URL, DB_IAM_AUTH or DB_SECRET_ARN")
    # Read as it is now, for each connection: in the stack only the schema migrations come here (the master's secret,
    # which RDS rotates every 7 days), connecting a few times a deploy; a copy kept minutes would log in with the
    # previous password after a rotation, and their connection retries would retry it.
    secret = json_secret(settings.db_secret_arn, "the database secret", max_age_s=0)
    # A secret RDS keeps for the master user (ManageMasterUserPassword) holds its name and password alone: the
    # instance is then DB_HOST, DB_PORT and DB_NAME.
    host = secret.get("host", settings.db_host)
    if host is None:
        raise ConfigurationError("the database secret lacks 'host', and DB_HOST is not set")
    try:
        return make_conninfo(
            host=host,
            port=str(secret.get("port", settings.db_port)),
            user=secret["username"],
            password=secret["password"],
            dbname=secret.get("dbname", settings.db_name or "postgres"),
            sslmode="require",
        )
    except KeyError as exc:
        raise ConfigurationError(f"the database secret lacks {exc.args[0]!r}") from exc


def json_secret(secret_arn: str, what: str, *, max_age_s: int) -> dict:
    """The Secrets Manager secret `secret_arn`, a JSON object (RDS's format), cached for `max_age_s`; `what` names
    it in errors. Raises DatabaseUnavailable when it cannot be read, ConfigurationError when it is not JSON."""
    from aws_lambda_powertools.utilities import parameters

    try:
        return parameters.get_secret(secret_arn, transform="json", max_age=max_age_s)
    except parameters.exceptions.GetParameterError as exc:  # throttling, network, access denied
        raise DatabaseUnavailable(f"cannot read {what}: {exc}") from exc
    except parameters.exceptions.TransformParameterError as exc:
        raise ConfigurationError(f"{what} is not JSON") from exc


def startup_options(settings: DatabaseSettings, statement_timeout_ms: int) -> str | None:
    """The libpq `options` sent at connection start: the statement timeout, and the session's time zone as UTC
    (psycopg then reads every timestamptz as a datetime in `datetime.UTC` itself: in any other zone, even one
    named `Etc/UTC` as a machine's default may be, each value read costs a conversion, and each subtraction or
    comparison with the service's own instants, all in `UTC`, a call of the zone's `utcoffset` on both sides —
    ~8 % of a feed page); except through RDS Proxy, which refuses startup options ("RDS Proxy currently doesn't
    support command-line options"): there the proxy's InitQuery (template.yaml) sets the request timeout on
    every database connection it opens, and the time zone is the parameter group's, UTC (template.yaml)."""
    if settings.through_rds_proxy:
        return None
    return f"-c statement_timeout={statement_timeout_ms} -c TimeZone=UTC"


def connect(settings: DatabaseSettings | None = None, *, statement_timeout_ms: int | None = None) -> psycopg.Connection:
    """A new autocommit connection with the request statement timeout (or `statement_timeout_ms`)."""
    settings = settings or database_settings()
    timeout_ms = statement_timeout_ms or settings.db_statement_timeout_ms
    options = startup_options(settings, timeout_ms)
    try:
        conn = BoundedConnection.connect(
            connection_url(settings),
            autocommit=True,
            prepare_threshold=None,
            connect_timeout=settings.db_connect_timeout_s,
            application_name="feed-assembly",
            **({"options": options} if options else {}),
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {exc}") from exc
    conn.answer_within_s = answer_bound_s(timeout_ms)
    if options is None and statement_timeout_ms is not None:
        # Through the proxy, a bound other than the request's is session state: it pins this session to its
        # database connection until it closes, which only a caller that asks for its own bound accepts (none in the
        # stack: its schema migrations connect to the instance itself, and their proxy login check takes the
        # request's bound).
        try:
            conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(timeout_ms)))
        except psycopg.OperationalError as exc:
            conn.close()
            raise DatabaseUnavailable(f"cannot connect to the database: {exc}") from exc
    return conn


@contextmanager
def snapshot_transaction(snapshot: str | None) -> Iterator[psycopg.Connection]:
    """A transaction on a new connection of its own that sees what the transaction that exported `snapshot`
    (pg_export_snapshot) sees, or (`None`) a read-committed one; committed when the block ends without an
    error, then closed. Another thread may cancel its statement (`cancel_safe`)."""
    conn = connect()
    try:
        if snapshot is not None:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.transaction():
            if snapshot is not None:
                conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            yield conn
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"database error: {exc}") from exc
    finally:
        conn.close()


def reset_cached_connection() -> None:
    """Close and forget this thread's connection (tests, settings changes), once the outcome of a statement
    sent on it without waiting is in."""
    confirm_sent()
    conn: psycopg.Connection | None = getattr(_cache, "connection", None)
    if conn is not None:
        conn.close()
    _cache.connection = None


def open_cached_connection() -> None:
    """Open this thread's connection now rather than on the first request (before a SnapStart snapshot)."""
    _cached_connection()


def forget_cached_connection() -> None:
    """Close and forget this thread's connection and the RDS client that signed its token (after a SnapStart
    restore: the server is long gone from the socket, and the token and credentials may have expired)."""
    reset_cached_connection()
    _rds_client.cache_clear()


class _Unconfirmed(Struct, frozen=True):
    """A statement sent on the cached connection whose outcome is not read yet."""

    conn: psycopg.Connection
    what: str  # for the log: what the statement does
    context: dict[str, str]  # for the log: e.g. the feed's id
    failure_metric: str  # counted when it failed or its outcome was lost
    answer_by: float  # the `monotonic()` time by which it has surely ended, committed or not


def send_without_waiting(
    conn: psycopg.Connection, query: str, params: dict, *, what: str, context: dict[str, str], failure_metric: str
) -> None:
    """Send one statement on this thread's cached connection `conn` (autocommit: it commits on its own) and return
    as soon as it has left for the server, without waiting for its outcome.

    The outcome is read before the connection's next use (`confirm_sent`), so later statements on this
    connection see what it wrote; a failure is logged there with `what` and `context` and counted as
    `failure_metric`, and the caller that sent it never learns of it. Returning after the send matters in
    Lambda, which may freeze the container as soon as the handler returns: the statement is already in the
    kernel's socket buffer, not libpq's.
    Raises psycopg.OperationalError when the statement cannot be sent (the connection is broken).
    """
    confirm_sent()
    # The statement and its parameters adapted as execute() adapts them (psycopg's own query conversion: pinned
    # in the requirements), sent by PQsendQueryParams, whose messages end with their own Sync: the server runs
    # and commits it without any further message from here. Merging the parameters into the text instead
    # (ClientCursor.mogrify) cost ~50 µs more for a feed's snapshot.
    converted = PostgresQuery(Transformer(conn))
    converted.convert(query, params)
    pgconn = conn.pgconn
    pgconn.send_query_params(converted.query, converted.params, converted.types, converted.formats)
    try:
        while pgconn.flush():  # a non-blocking connection: wait until the socket takes the rest
            _wait_for(pgconn, select.POLLOUT, database_settings().db_statement_timeout_ms / 1000)
    except TimeoutError as exc:
        conn.close()  # part of a statement may have left: nothing else can follow it on this connection
        raise psycopg.OperationalError(f"cannot send the statement: {exc}") from exc
    _cache.unconfirmed = _Unconfirmed(conn, what, context, failure_metric, monotonic() + unconfirmed_wait_s())


def unconfirmed_wait_s() -> float:
    """Seconds by which a statement sent without waiting has surely ended, committed or not: the request
    statement timeout and a grace period for the network."""
    return answer_bound_s(database_settings().db_statement_timeout_ms)


def confirm_sent() -> None:
    """Read the outcome of this thread's statement sent without waiting, if any: logged when it failed, or
    when the connection was lost before it came (then whether it committed is unknown); a connection that gives
    no outcome within the statement timeout and a grace period is closed."""
    unconfirmed: _Unconfirmed | None = getattr(_cache, "unconfirmed", None)
    if unconfirmed is None:
        return
    _cache.unconfirmed = None
    pgconn = unconfirmed.conn.pgconn
    errors = []
    try:
        deadline = _earliest(unconfirmed.answer_by, _request_deadline())
        pgconn.consume_input()
        while pgconn.is_busy():
            _wait_for(pgconn, select.POLLIN, deadline - monotonic())
            pgconn.consume_input()
        while (result := pgconn.get_result()) is not None:
            if result.status == pq.ExecStatus.FATAL_ERROR:
                errors.append(result.get_error_message(unconfirmed.conn.info.encoding).strip())
    except (psycopg.OperationalError, TimeoutError) as exc:
        unconfirmed.conn.close()  # whatever it still holds belongs to a statement nobody awaits
        metrics.add_metric(name=unconfirmed.failure_metric, unit=MetricUnit.Count, value=1)
        logger.warning(
            f"{unconfirmed.what}: the connection was lost before its outcome came",
            extra={**unconfirmed.context, "error": str(exc)},
        )
        return
    if errors:
        metrics.add_metric(name=unconfirmed.failure_metric, unit=MetricUnit.Count, value=1)
        logger.warning(
            f"{unconfirmed.what} failed",
            extra={**unconfirmed.context, "error": "; ".join(errors)},
        )


def _wait_for(pgconn: pq.abc.PGconn, event: int, timeout_s: float) -> None:
    """Wait until the connection's socket is ready for `event`; TimeoutError after `timeout_s`."""
    poller = select.poll()
    poller.register(pgconn.socket, event)
    if timeout_s <= 0 or not poller.poll(timeout_s * 1000):
        raise TimeoutError(f"no answer from the database within {timeout_s:.1f} s")


def _cached_connection() -> tuple[psycopg.Connection, bool]:
    """The container's connection and whether it is reused from an earlier call (once the outcome of a
    statement sent on it without waiting is in)."""
    confirm_sent()
    conn: psycopg.Connection | None = getattr(_cache, "connection", None)
    if conn is not None and not conn.closed and not conn.broken:
        return conn, True
    conn = connect()
    _cache.connection = conn
    return conn, False


# What makes the database unavailable to a request, rather than the request wrong: a lost or silent
# connection, a timeout, or a server that cannot write now (a read replica, a writer demoted in a failover).
_UNAVAILABLE = (psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction)


def run[T](work: Callable[[psycopg.Connection], T], *, in_transaction: bool = True) -> T:
    """Run `work` on the cached connection, inside a transaction unless `in_transaction` is False.

    A reused connection may have been dropped by the server (failover, proxy idle timeout) since the last
    call; then `work` runs once more on a new connection, so `work` must be safe to repeat (it is rolled
    back on failure). Other connection losses, timeouts, a server that stopped answering and one that cannot
    write raise DatabaseUnavailable.
    """
    conn, reused = _cached_connection()
    try:
        return _attempt(conn, work, in_transaction)
    except _UNAVAILABLE as exc:
        if not (reused and conn.broken):
            raise DatabaseUnavailable(f"database error: {exc}") from exc
        logger.warning("cached database connection was dropped; reconnecting once", extra={"error": str(exc)})
    conn, _ = _cached_connection()
    try:
        return _attempt(conn, work, in_transaction)
    except _UNAVAILABLE as exc:
        raise DatabaseUnavailable(f"database error: {exc}") from exc


def _attempt[T](conn: BoundedConnection, work: Callable[[psycopg.Connection], T], in_transaction: bool) -> T:
    bound = conn.answer_within_s
    try:
        if not in_transaction:
            return work(conn)
        with conn.transaction():
            return work(conn)
    finally:
        conn.answer_within_s = bound  # a transaction's own statement timeout ended with it
