"""The event log: one row per event in monthly partitions, stored at most once per event_id."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime

import msgspec
import psycopg
from psycopg import generators, sql
from psycopg.pq import ExecStatus, TransactionStatus

from feedcore.api.event_fast_path import (
    AddToCartStruct,
    ClickStruct,
    EventStruct,
    ImpressionStruct,
    PurchaseStruct,
    RemoveFromCartStruct,
)

# Serializes partition creation between concurrent writers.
PARTITION_LOCK_KEY = 7_246_201_119
# How long dropping a partition waits for its lock on the event log (see drop_partition).
DROP_LOCK_TIMEOUT_MS = 200
# Months whose partition this process has seen to exist (partitions are only dropped by retention, which
# clears this cache in the process that runs it, and only for months older than the late-event horizon).
_known_months: set[date] = set()

# A batch travels as one JSON document (serialized by msgspec, which beats adapting thousands of values one by
# one; json, not jsonb, as it is read once), purchase lines already as the row's arrays.
_INCOMING = """
WITH incoming AS (
    SELECT *
    FROM json_to_recordset(%(events)s::json) AS e (
        event_id uuid, occurred_at timestamptz, type text, user_id text, store_id text, item_id text,
        quantity int, order_id text, line_item_ids text[], line_quantities int[], line_unit_prices numeric[],
        feed_id text, section text, position int)
)"""
_EVENT_ROWS = """
    INSERT INTO events (event_id, occurred_at, event_type, user_id, store_id, item_id, quantity, order_id,
                        line_item_ids, line_quantities, line_unit_prices, feed_id, section, position)
    SELECT i.event_id, i.occurred_at, i.type, i.user_id, i.store_id, i.item_id, i.quantity, i.order_id,
           i.line_item_ids, i.line_quantities, i.line_unit_prices, i.feed_id, i.section, i.position"""
# Which of the item ids the caller could not vouch for are in the catalog (by index lookups). The ids travel as
# one text, joined by commas (an item id holds none): psycopg adapts a list of texts element by element in Python
# (~0.3 ms for a batch's few hundred ids).
_CATALOG_ITEMS = """
    SELECT coalesce(array_agg(item_id), '{}') FROM items WHERE item_id = ANY(string_to_array(%(unverified_items)s, ','))
"""

# The usual case, every event new: two plain COPYs in one transaction, into event_ids and then into events (COPY
# into the partitioned parent routes each row to its month). event_ids' primary key still decides: an event_id
# stored before (a retry, a racing batch) aborts the transaction, and the batch goes again by _STORE_NEW_EVENTS.
_COPY_EVENT_IDS = "COPY event_ids (event_id, occurred_at) FROM STDIN"
_COPY_EVENTS = """COPY events (event_id, occurred_at, event_type, user_id, store_id, item_id, quantity, order_id,
                   line_item_ids, line_quantities, line_unit_prices, feed_id, section, position) FROM STDIN"""
_NULL = "\\N"  # COPY's text format for NULL
_json = msgspec.json.encode
# Both in one simple query: one transaction (see _copy_new_events).
_COPY_NEW_EVENTS = f"{_COPY_EVENT_IDS}; {_COPY_EVENTS}".encode()
# Some event_id was stored before: ON CONFLICT DO NOTHING into event_ids decides which are new, and only
# those go into events.
_STORE_NEW_EVENTS = f"""{_INCOMING},
new_id AS (
    INSERT INTO event_ids (event_id, occurred_at)
    SELECT event_id, occurred_at FROM incoming ORDER BY event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
),
stored AS ({_EVENT_ROWS}
    FROM incoming i
    JOIN new_id USING (event_id)
    RETURNING event_id
)
SELECT (SELECT coalesce(array_agg(event_id::text), '{{}}')
        FROM incoming WHERE event_id NOT IN (SELECT event_id FROM stored)),
       ({_CATALOG_ITEMS})
"""


def _copy_rows(events: Sequence[EventStruct]) -> tuple[bytes, bytes]:
    """The rows of `events` for event_ids and for events in COPY's text format, in event_id order, so that
    overlapping batches take event_ids' row locks in the same order and cannot deadlock (each row starts with
    its event_id, canonical text of one length, and the batch's event_ids are distinct: sorting the rows sorts
    them by event_id). Instants go as the client wrote them (RFC 3339, an offset PostgreSQL reads).

    No value is escaped: the contract admits no backslash, tab, newline or carriage return in any text (ids
    are letters, digits and `_.:-`; tests/unit/test_contract.py keeps it so), nor a quote, brace, comma or
    space in an array's element; the elements are quoted all the same, so that an item called NULL stays one.
    """
    id_rows, event_rows = [], []
    for event in events:
        key = f"{event.event_id}\t{event.occurred_at}"
        id_rows.append(key)
        kind = type(event)
        if kind is ImpressionStruct:  # the most common event, and it has no NULL to write
            event_rows.append(
                f"{key}\timpression\t{event.user_id}\t{event.store_id}\t{event.item_id}\t\\N\t\\N\t\\N\t\\N\t\\N\t"
                f"{event.feed_id}\t{event.section}\t{event.position}"
            )
        elif kind is PurchaseStruct:
            lines = event.items
            item_ids = '","'.join([line.item_id for line in lines])
            # msgspec writes a list of numbers as JSON in C: an array's elements without its brackets.
            quantities = _json([line.quantity for line in lines]).decode()[1:-1]
            unit_prices = _json([line.unit_price for line in lines]).decode()[1:-1]
            event_rows.append(
                f'{key}\tpurchase\t{event.user_id}\t{event.store_id}\t\\N\t\\N\t{event.order_id}\t{{"{item_ids}"}}\t'
                f"{{{quantities}}}\t{{{unit_prices}}}\t\\N\t\\N\t\\N"
            )
        elif kind is ClickStruct or kind is AddToCartStruct:
            feed_id, section, position = event.feed_id, event.section, event.position
            event_rows.append(
                f"{key}\t{kind.__struct_config__.tag}\t{event.user_id}\t{event.store_id}\t{event.item_id}\t"
                f"{event.quantity if kind is AddToCartStruct else _NULL}\t\\N\t\\N\t\\N\t\\N\t"
                f"{_NULL if feed_id is None else feed_id}\t{_NULL if section is None else section}\t"
                f"{_NULL if position is None else position}"
            )
        else:  # remove_from_cart, hide
            event_rows.append(
                f"{key}\t{kind.__struct_config__.tag}\t{event.user_id}\t{event.store_id}\t{event.item_id}\t"
                f"{event.quantity if kind is RemoveFromCartStruct else _NULL}\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N"
            )
    id_rows.sort()
    event_rows.sort()
    return ("\n".join(id_rows) + "\n").encode(), ("\n".join(event_rows) + "\n").encode()


def _event_rows(events: Sequence[EventStruct]) -> bytes:
    """The JSON document of the events' rows: a purchase's lines become the row's three arrays."""
    rows = msgspec.to_builtins(events)
    for row in rows:
        if row["type"] == "purchase":
            lines = row.pop("items")
            row["line_item_ids"] = [line["item_id"] for line in lines]
            row["line_quantities"] = [line["quantity"] for line in lines]
            row["line_unit_prices"] = [line["unit_price"] for line in lines]
    return msgspec.json.encode(rows)


class MissingPartition(Exception):
    """An event's month has no partition; ensure_event_partitions, then retry."""


@dataclass(frozen=True)
class StoredEvents:
    """What a store_events call did: the event_ids that were stored before (all others are now), in canonical
    text, and which of the unverified item ids are in the catalog."""

    duplicate_ids: frozenset[str]
    catalog_items: frozenset[str]


def month_of(moment: datetime) -> date:
    utc = moment.astimezone(UTC)
    return date(utc.year, utc.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def month_start(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def forget_known_partitions() -> None:
    """Forget which monthly partitions exist: for a process that points feedcore at another database."""
    _known_months.clear()


def ensure_event_partitions(conn: psycopg.Connection, months: Iterable[date]) -> None:
    """Create the monthly partitions of `months` that do not exist yet. Runs in its own transaction."""
    missing = sorted(set(months) - _known_months)
    if not missing:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK_KEY,))
        for month in missing:
            # DDL on the log runs as its owner (migration 0060): the functions' roles own none of it.
            conn.execute("SELECT create_event_partition(%s)", (month,))
    _known_months.update(missing)


def store_events(
    conn: psycopg.Connection, events: Sequence[EventStruct], unverified_items: Collection[str] = ()
) -> StoredEvents:
    """Insert the events whose event_id is new, and look `unverified_items` up in the catalog.

    On an autocommit connection outside a transaction (ingestion's), commits its own: plain COPYs first,
    and by ON CONFLICT in a second transaction only if some event_id was stored before. Otherwise it runs in
    the caller's transaction, by ON CONFLICT at once. Returns the event_ids that were already stored (usually
    none) and the unverified items that exist. The months' partitions must exist (ensure_event_partitions).
    """
    own_transaction = conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE
    try:
        if own_transaction:
            try:
                return _copy_new_events(conn, events, unverified_items)
            except psycopg.errors.UniqueViolation as exc:
                if exc.diag.constraint_name != "event_ids_pkey":
                    raise
        params = {"events": _event_rows(events).decode(), "unverified_items": ",".join(unverified_items)}
        with conn.transaction() if own_transaction else nullcontext():
            duplicate_ids, catalog_items = conn.execute(_STORE_NEW_EVENTS, params).fetchone()
    except psycopg.errors.CheckViolation as exc:
        if exc.diag.constraint_name is not None:  # a CHECK constraint, not partition routing
            raise
        # This process believed a partition exists that does not (the database was replaced or restored).
        forget_known_partitions()
        raise MissingPartition(str(exc)) from exc
    return StoredEvents(frozenset(duplicate_ids), frozenset(catalog_items))


def _copy_new_events(
    conn: psycopg.Connection, events: Sequence[EventStruct], unverified_items: Collection[str]
) -> StoredEvents:
    """Store `events`, all new, by COPY in one transaction; raises UniqueViolation when one was stored before.

    Both COPYs go as one simple query, driven through libpq: the server runs the statements of one query as one
    transaction and commits it before it reports the last one complete, so the batch costs one round trip and
    none of psycopg's transaction or Copy objects (~1 ms of client a batch; README, Measured). A failed statement
    ends the query: the error is raised once the server is ready for the next one.
    """
    id_rows, event_rows = _copy_rows(events)
    catalog_items: list[str] = []
    if unverified_items:
        (catalog_items,) = conn.execute(_CATALOG_ITEMS, {"unverified_items": ",".join(unverified_items)}).fetchone()
    pgconn = conn.pgconn
    failure = None
    with conn.lock:  # as psycopg's own calls hold it
        pgconn.send_query(_COPY_NEW_EVENTS)
        conn.wait(generators.send(pgconn))
        for rows in (id_rows, event_rows):
            result = conn.wait(generators.fetch(pgconn))
            if result.status != ExecStatus.COPY_IN:
                failure = result
                break
            conn.wait(generators.copy_to(pgconn, rows, flush=False))
            while not pgconn.put_copy_end(None):  # the output buffer is full: send some first
                conn.wait(generators.send(pgconn))
            conn.wait(generators.send(pgconn))
            if (result := conn.wait(generators.fetch(pgconn))).status != ExecStatus.COMMAND_OK:
                failure = result
                break
        while conn.wait(generators.fetch(pgconn)) is not None:  # until the server is ready for the next query
            pass
    if failure is not None:
        raise psycopg.errors.error_from_result(failure, encoding=conn.info.encoding)
    return StoredEvents(frozenset(), frozenset(catalog_items))


@dataclass(frozen=True, slots=True)
class EventPartition:
    """One month of the event log: its table and the instants it holds, [starts_at, ends_at)."""

    name: str
    starts_at: datetime
    ends_at: datetime


def event_partitions(conn: psycopg.Connection) -> list[EventPartition]:
    """The monthly partitions of the event log, oldest first."""
    children = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'events'::regclass ORDER BY c.relname"
    ).fetchall()
    partitions = []
    for (name,) in children:
        month = datetime.strptime(name, "events_%Y_%m").date()
        partitions.append(EventPartition(name, month_start(month), month_start(next_month(month))))
    return partitions


def partitions_ending_by(conn: psycopg.Connection, cutoff: datetime) -> list[EventPartition]:
    """The monthly partitions whose month ends on or before `cutoff`, oldest first."""
    return [partition for partition in event_partitions(conn) if partition.ends_at <= cutoff]


def summarize_ranges(conn: psycopg.Connection, partition: EventPartition) -> int:
    """Summarize the block ranges of the partition's BRIN index that are not yet (through the log owner's
    function, migration 0126); returns how many."""
    return conn.execute(
        "SELECT summarize_event_ranges(%s::regclass)", (sql.Identifier(partition.name).as_string(conn),)
    ).fetchone()[0]


def event_id_blocks(conn: psycopg.Connection) -> int:
    """How many blocks `event_ids` takes now (ids stored from now on go after them or into freed space)."""
    return conn.execute("SELECT pg_relation_size('event_ids') / current_setting('block_size')::int").fetchone()[0]


def delete_event_ids_in_blocks(conn: psycopg.Connection, first_block: int, blocks: int, before: datetime) -> int:
    """Forget the event_ids of events that occurred before `before` among those stored in the table's blocks
    [first_block, first_block + blocks); returns how many. A TID range scan reads exactly those blocks, however
    late events and reused pages have mixed the table's order (the table has no index on time: it would widen
    with them, and every batch would pay to keep it). A retried event of that span would then be stored again:
    only spans past the late-event horizon, which ingestion refuses, may be forgotten."""
    return conn.execute(
        "DELETE FROM event_ids WHERE ctid >= %s::tid AND ctid < %s::tid AND occurred_at < %s",
        (f"({first_block},0)", f"({first_block + blocks},0)", before),
    ).rowcount


def drop_partition(conn: psycopg.Connection, partition: EventPartition) -> bool:
    """Drop one monthly partition of the event log (through the log owner's function, 0060); False when it gave
    up waiting for its lock. The DROP locks the whole log: while it waits for a long reader (a full rebuild),
    ingestion and feed reads queue behind it, so it waits at most DROP_LOCK_TIMEOUT_MS rather than the
    statement timeout. A partition another run dropped since this one listed it is dropped."""
    try:
        with conn.transaction():  # a savepoint: giving up leaves the caller's transaction usable
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{DROP_LOCK_TIMEOUT_MS}ms",))
            conn.execute("SELECT drop_event_partition(%s::regclass)", (sql.Identifier(partition.name).as_string(conn),))
    except psycopg.errors.LockNotAvailable:
        return False
    except psycopg.errors.UndefinedTable:
        pass  # gone already
    _known_months.discard(partition.starts_at.date())
    return True


def delete_user_events(conn: psycopg.Connection, user_id: str) -> int:
    """Delete the user's events; returns how many. Their event_ids stay (ids and times only, no personal
    data) so that a late retry of a deleted event is a duplicate rather than brought back."""
    return conn.execute("DELETE FROM events WHERE user_id = %s", (user_id,)).rowcount
