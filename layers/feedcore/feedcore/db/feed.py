"""Read path of the feed: the catalog and a store's packed shelf (read now and then and cached by the service),
or the store's availability, prices and popularity when its shelf is not packed over the current catalog; the
user's own rows (one statement per request); feed snapshots for paging."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import psycopg
from msgspec import Struct, field, structs

from feedcore.db import connection

# In item_id order: an item's position is its place in this order, as in the packed shelves (migration 0040).
_CATALOG = """
SELECT item_id, name, brand, department, aisle, tags, active, created_at, price::float8 FROM items ORDER BY item_id
"""

_CATALOG_VERSION = "SELECT version FROM catalog_state"

_STORE_KNOWN = "SELECT EXISTS (SELECT 1 FROM stores WHERE store_id = %(store_id)s)"

# The store's packed shelf ('*' for a store the catalog does not know) and the catalog's current version; the
# packed values only when the pack is not the one the caller holds (packed_at differs), else NULL, with the items'
# reorder counts packed over the same catalog (migration 0082; NULL when there are none, or when they are the ones
# the caller holds: the same at every store) and when those were packed.
_STORE_SHELF_PACK = """
WITH scope AS (SELECT EXISTS (SELECT 1 FROM stores WHERE store_id = %(store_id)s) AS known),
shelf AS (
    SELECT s.*, s.packed_at IS DISTINCT FROM %(have)s::timestamptz AS changed
    FROM scope JOIN store_shelves s ON s.store_id = CASE WHEN scope.known THEN %(store_id)s ELSE '*' END
)
SELECT scope.known, (SELECT version FROM catalog_state), shelf.catalog_version, shelf.packed_at, shelf.stale,
       shelf.changed, CASE WHEN changed THEN shelf.available END, CASE WHEN changed THEN shelf.prices END,
       CASE WHEN changed THEN shelf.popularity END, CASE WHEN changed THEN shelf.trending END,
       CASE WHEN changed THEN shelf.trending_items END, CASE WHEN changed THEN shelf.popular_items END,
       CASE WHEN changed THEN shelf.aisle_items END, CASE WHEN changed THEN shelf.aisle_sizes END,
       CASE WHEN reorders.packed_at IS DISTINCT FROM %(have_reorders)s::timestamptz THEN reorders.item_orders END,
       CASE WHEN reorders.packed_at IS DISTINCT FROM %(have_reorders)s::timestamptz THEN reorders.item_buyers END,
       reorders.packed_at
FROM scope
LEFT JOIN shelf ON true
LEFT JOIN item_reorders_packed reorders ON shelf.changed AND reorders.catalog_version = shelf.catalog_version
"""

_STORE_AVAILABILITY = "SELECT item_id, available, price::float8 FROM store_availability WHERE store_id = %(store_id)s"

_STORE_POPULARITY = "SELECT item_id, raw_score, trending_score FROM item_popularity WHERE store_id = %(store_id)s"

_ITEM_MODEL_SCORES = "SELECT model, item_id, score FROM model_scores WHERE model = ANY(%(models)s) AND user_id = ''"

# The user's own rows (migration 0096: those of 0082 less the aisle rows, which the feed sums from the item rows),
# or with the reorder counts of the items the user bought, for a shelf that does not carry them: planned once per
# session.
_FEED_USER_ITEM_ROWS = """
SELECT * FROM feed_user_item_rows(
    %(user_id)s, %(models)s, %(pairs)s, %(pool)s, %(buy_again_pool)s, %(recent_since)s, %(recent_limit)s,
    %(seed_limit)s)
"""
_FEED_USER_ITEM_ROWS_WITH_REORDERS = """
SELECT * FROM feed_user_item_rows_with_reorders(
    %(user_id)s, %(models)s, %(pairs)s, %(pool)s, %(buy_again_pool)s, %(recent_since)s, %(recent_limit)s,
    %(seed_limit)s)
"""

# One statement, committed without waiting for the WAL flush (synchronous_commit off for its own transaction, which
# record_feed sets with set_config(…, true), so no session state for RDS Proxy): a crash can lose the feeds recorded
# in the last moments, whose snapshots (UNLOGGED) are lost with it anyway — their cursors get 410, and their
# impressions no attribution. A plpgsql function (migration 0105): its INSERTs are planned once per session.
_SAVE_FEED = """
SELECT record_feed(
    %(feed_id)s, %(user_id)s, %(store_id)s, %(experiment)s, %(variant)s, %(fallback)s, %(created_at)s, %(expires_at)s,
    %(sections)s::json)
"""

# A catalog row: (item_id, name, brand, department, aisle, tags, active, created_at, price), the shape of
# Candidate's catalog fields.
CatalogRow = tuple[str, str, str | None, str, str, list[str], bool, datetime, float]


class Candidate(Struct, frozen=True):
    """An item a source proposes, with every fact the filters and the scoring read.

    Scores are as stored: epoch-relative raw values (see the scoring migration), comparable between items
    of one request. `available` is None when the store is unknown (no availability to check). The
    `recent_*` and `in_cart` facts come from the user's events of the last hours, scored or not.
    """

    source: str
    source_score: float | None
    seed_name: str | None
    item_id: str
    name: str
    brand: str | None
    department: str
    aisle: str
    tags: list[str]
    active: bool
    created_at: datetime
    available: bool | None
    price: float  # numeric(10, 2) read as float8: the contract's Money
    purchase_count: int
    first_purchased_at: datetime | None
    last_purchased_at: datetime | None
    purchase_raw: float
    affinity_raw: float
    hidden: bool
    last_hidden_at: datetime | None
    item_orders: int  # over all users: the orders holding the item (for an item the user bought; else 0)
    item_buyers: int  # over all users: the users who bought it (idem)
    popularity_raw: float
    trending_score: float
    model_score: float | None
    recent_purchase_at: datetime | None
    recent_hide_at: datetime | None
    recent_positive_at: datetime | None
    in_cart: bool
    store_known: bool


def catalog(conn: psycopg.Connection) -> tuple[int, list[CatalogRow]]:
    """The catalog's version and every catalog item, active or not, in item_id order (one transaction)."""
    with conn.transaction(), conn.cursor(binary=True) as cursor:  # binary: no text parsing of timestamps, numbers
        (version,) = cursor.execute(_CATALOG_VERSION).fetchone()
        return version, cursor.execute(_CATALOG).fetchall()


class ShelfPack(Struct, frozen=True):
    """A store's packed shelf as read (see migration 0040): whether the catalog knows the store, the catalog's
    current version, and the pack's — absent (`packed_at` None) when the store has none. The packed values
    (network byte order) are None when the pack is the one the reader said it holds (`changed` false)."""

    store_known: bool
    catalog_version: int
    packed_version: int | None
    packed_at: datetime | None
    stale: bool | None
    changed: bool | None
    available: bytes | None
    prices: bytes | None
    popularity: bytes | None
    trending: bytes | None
    trending_items: bytes | None
    popular_items: bytes | None
    aisle_items: bytes | None
    aisle_sizes: bytes | None
    item_orders: bytes | None  # the items' reorder counts (migration 0082): None as well when none are packed over
    item_buyers: bytes | None  # the shelf's catalog, or when the reader holds these (packed at reorders_packed_at)
    reorders_packed_at: datetime | None = None  # when the counts read with the pack were packed (None: no counts)


def store_shelf_pack(
    conn: psycopg.Connection, store_id: str, have: datetime | None, have_reorders: datetime | None = None
) -> ShelfPack:
    """The packed shelf of the store (of '*' when the catalog does not know it), its values left out when it
    was packed at `have`, the reorder counts when they were packed at `have_reorders` (one statement)."""
    params = {"store_id": store_id, "have": have, "have_reorders": have_reorders}
    with conn.cursor(binary=True) as cursor:
        return ShelfPack(*cursor.execute(_STORE_SHELF_PACK, params).fetchone())


def pack_store_shelves(conn: psycopg.Connection, store_ids: Sequence[str] | None = None) -> int:
    """Pack the shelves of `store_ids` (None: every store, and '*') over the current catalog; returns how many."""
    row = conn.execute(
        "SELECT pack_store_shelves(%s)", (list(store_ids) if store_ids is not None else None,)
    ).fetchone()
    return row[0]


def repack_store_shelves_scores(conn: psycopg.Connection, store_ids: Sequence[str]) -> int:
    """Repack the scores (popularity, trending, ranked lists) of the shelves of `store_ids` ('*' included when
    named) over the current catalog, keeping their availability and prices; a shelf whose pack is missing, stale
    or over another catalog, or whose catalog the shelf positions are not over, is packed whole. Returns how many
    (migrations 0052 and 0088)."""
    return conn.execute("SELECT repack_store_shelves_scores(%s)", (list(store_ids),)).fetchone()[0]


def pack_item_reorders(conn: psycopg.Connection) -> None:
    """Pack every catalog item's reorder counts over the current catalog, for the feed (migration 0082)."""
    conn.execute("SELECT pack_item_reorders()")


def refresh_shelf_positions(conn: psycopg.Connection) -> None:
    """Bring the catalog's shelf positions, which repacking a shelf's scores reads, to the current catalog when
    they are over another (migration 0088)."""
    conn.execute("SELECT refresh_shelf_positions()")


def item_model_scores(conn: psycopg.Connection, models: Sequence[str]) -> list[tuple[str, str, float]]:
    """The item-level scores of `models`: (model, item_id, score)."""
    with conn.cursor(binary=True) as cursor:
        return cursor.execute(_ITEM_MODEL_SCORES, {"models": list(models)}).fetchall()


class StoreRows(Struct, frozen=True):
    """A store as read from its rows: whether the catalog knows it, its availability and shelf prices (None
    when it is unknown), and its popularity (over all stores when it is unknown)."""

    store_known: bool
    availability: list[tuple[str, bool, float | None]] | None  # (item_id, available, shelf price)
    popularity: list[tuple[str, float, float]]  # (item_id, raw_score, trending_score)


def store_rows(conn: psycopg.Connection, store_id: str) -> StoreRows:
    """The store's availability, shelf prices and popularity: range scans of the store's rows, no join (the
    catalog is read on its own). For a store without a current packed shelf."""
    with conn.cursor(binary=True) as cursor:
        (known,) = cursor.execute(_STORE_KNOWN, {"store_id": store_id}).fetchone()
        availability = cursor.execute(_STORE_AVAILABILITY, {"store_id": store_id}).fetchall() if known else None
        popularity = cursor.execute(_STORE_POPULARITY, {"store_id": store_id if known else "*"}).fetchall()
    return StoreRows(known, availability, popularity)


class UserRowsQuery(Struct, frozen=True):
    """What the per-request read needs: whose rows, which models, whether goes-well-with is shown, how many, and
    whether the reorder counts of the items the user bought are read with them (the shelf has none)."""

    user_id: str
    models: tuple[str, ...]
    pairs: bool
    pool: int
    buy_again_pool: int
    recent_since: datetime
    recent_limit: int = 100
    seed_limit: int = 5
    reorders: bool = True


class UserItemRow(NamedTuple):  # a tuple: made for each of the user's ~65 items per request
    """The user's history of an item (fields in Candidate's order)."""

    purchase_count: int
    first_purchased_at: datetime | None
    last_purchased_at: datetime | None
    purchase_raw: float
    affinity_raw: float
    hidden: bool
    last_hidden_at: datetime | None


# The columns of feed_user_item_rows after (kind, item_id): an item's history (UserItemRow's fields), a score and
# its label, an item's recent events (purchase, hide, positive, cart), the user's scored orders.
# feed_user_item_rows_with_reorders has the item's orders and buyers after its history.
_HISTORY, _SCORE, _LABEL, _RECENT, _ORDERED_AT = slice(2, 9), 9, 10, slice(11, 15), 15
_REORDERS = slice(9, 11)
_user_item_row = UserItemRow._make


class UserRows(Struct):
    """The user's own rows, by kind (see feed_user_item_rows)."""

    items: dict[str, UserItemRow]
    recent: dict[str, tuple[datetime | None, datetime | None, datetime | None, bool]]  # purchase, hide, positive, cart
    pairs: list[tuple[str, float, str]]  # (paired item, score, seed item)
    model_scores: dict[str, dict[str, float]]  # model → item → the user's score
    ordered_at: list[datetime] = field(default_factory=list)  # the user's scored orders, in time order
    # item → (its orders, its buyers) over all users, for the items the user bought: read only when the query
    # asks for them (see UserRowsQuery.reorders)
    reorders: dict[str, tuple[int, int]] = field(default_factory=dict)


def user_rows(conn: psycopg.Connection, query: UserRowsQuery) -> UserRows:
    """The user's history per item, recent events per item, goes-well-with candidates, model scores and scored
    orders (and the reorder counts of the items the user bought, when the query asks), in one statement."""
    params = {
        "user_id": query.user_id,
        "models": list(query.models),
        "pairs": query.pairs,
        "pool": query.pool,
        "buy_again_pool": query.buy_again_pool,
        "recent_since": query.recent_since,
        "recent_limit": query.recent_limit,
        "seed_limit": query.seed_limit,
    }
    rows = UserRows({}, {}, [], {})
    items, recent, pairs, model_scores = rows.items, rows.recent, rows.pairs, rows.model_scores
    statement = _FEED_USER_ITEM_ROWS_WITH_REORDERS if query.reorders else _FEED_USER_ITEM_ROWS
    # fetchall: rows are made in C, where iterating the cursor costs a Python call per row
    fetched = _user_rows_cursor(conn).execute(statement, params).fetchall()
    if query.reorders:  # the same rows with two more columns: an item's counts after its history
        reorders = rows.reorders
        fetched = [_without_reorders(row, reorders) for row in fetched]
    # each row's parts taken by index and slice (C), not unpacked into names (a list per row)
    for row in fetched:
        kind = row[0]
        if kind == "item":
            items[row[1]] = _user_item_row(row[_HISTORY])
        elif kind == "recent":
            recent[row[1]] = row[_RECENT]
        elif kind == "pair":
            pairs.append((row[1], row[_SCORE], row[_LABEL]))
        elif kind == "orders":
            rows.ordered_at = row[_ORDERED_AT]
        else:
            model_scores.setdefault(row[_LABEL], {})[row[1]] = row[_SCORE]
    return rows


# The cursor the user's rows are read with, kept per thread for its connection: a psycopg cursor that runs the same
# statement again keeps the adaptation it set up for the parameters and the result's columns, which a new cursor
# sets up anew (~120,000 of a first page's ~7M client instructions). It keeps its last result (one user's rows) and
# its connection alive until the thread's next call replaces it: one small result per thread.
_held_cursors = threading.local()


def _user_rows_cursor(conn: psycopg.Connection) -> psycopg.Cursor:
    """A binary cursor of `conn` (no text parsing of timestamps and numbers), the one held for it when there is."""
    cursor: psycopg.Cursor | None = getattr(_held_cursors, "user_rows", None)
    if cursor is None or cursor.connection is not conn or cursor.closed:
        cursor = _held_cursors.user_rows = conn.cursor(binary=True)
    return cursor


def _without_reorders(row: tuple, reorders: dict[str, tuple[int, int]]) -> tuple:
    """A row with reorder counts as feed_user_item_rows has it, its counts put in `reorders` for a bought item."""
    if row[0] == "item" and row[2] > 0:
        reorders[row[1]] = row[_REORDERS]
    return row[: _REORDERS.start] + row[_REORDERS.stop :]


class FeedRecord(Struct, frozen=True):
    """An assembled feed as attribution needs it."""

    feed_id: str
    user_id: str
    store_id: str
    experiment: str | None
    variant: str
    fallback: str | None
    created_at: datetime


def record_feed(conn: psycopg.Connection, feed: FeedRecord, sections: str, expires_at: datetime) -> None:
    """Record the feed and keep its ranked sections (a JSON document) until `expires_at` for its later pages
    (one statement), on the cached connection `conn` without waiting for the outcome: the page is served
    meanwhile, and the outcome is read (a failure logged) before the connection's next use."""
    connection.send_without_waiting(
        conn,
        _SAVE_FEED,
        {**structs.asdict(feed), "expires_at": expires_at, "sections": sections},
        what="recording the feed",
        context={"feed_id": feed.feed_id},
        failure_metric="FeedRecordingFailed",
    )


class FeedSnapshot(NamedTuple):
    """A recorded feed: its ranked sections (the Feed document), unless it has expired."""

    sections: dict | None
    expired: bool


def feed_snapshot(conn: psycopg.Connection, feed_id: str, user_id: str, now: datetime) -> FeedSnapshot | None:
    """The user's ranked feed `feed_id` as recorded, expired or not as of `now`; None when there is no such
    snapshot (never recorded, not committed yet, or removed)."""
    row = conn.execute(
        "SELECT CASE WHEN expires_at > %(now)s THEN sections END, expires_at <= %(now)s FROM feed_snapshots"
        " WHERE feed_id = %(feed_id)s AND user_id = %(user_id)s",
        {"feed_id": feed_id, "user_id": user_id, "now": now},
    ).fetchone()
    return FeedSnapshot(*row) if row else None


# The class of the advisory lock of a user's, keyed by the user id's hash, that an erasure holds while it deletes and
# a feed's recording tries to take shared, recording nothing when it cannot (migration 0121's record_feed).
FEED_RECORDING_LOCK_CLASS = 724_620_122


def lock_out_feed_recordings(conn: psycopg.Connection, user_id: str) -> None:
    """Wait for a recording of the user's feed under way, and have the next ones record nothing until this
    transaction ends (migration 0121)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (FEED_RECORDING_LOCK_CLASS, user_id))


def delete_user_feeds(conn: psycopg.Connection, user_id: str) -> int:
    """Delete the user's feed records and snapshots; returns how many feeds."""
    conn.execute("DELETE FROM feed_snapshots WHERE user_id = %s", (user_id,))
    return conn.execute("DELETE FROM feeds WHERE user_id = %s", (user_id,)).rowcount


def feed_blocks(conn: psycopg.Connection) -> int:
    """How many blocks `feeds` takes now."""
    return conn.execute("SELECT pg_relation_size('feeds') / current_setting('block_size')::int").fetchone()[0]


def delete_feeds_in_blocks(conn: psycopg.Connection, first_block: int, blocks: int, before: datetime) -> int:
    """Delete the feed records (kept for attribution) created before `before` among those stored in the table's
    blocks [first_block, first_block + blocks); returns how many. A TID range scan reads exactly those blocks
    (a BRIN index on created_at no longer narrows a search once freed pages are reused for new feeds, and
    `feeds` has none since migration 0086)."""
    return conn.execute(
        "DELETE FROM feeds WHERE ctid >= %s::tid AND ctid < %s::tid AND created_at < %s",
        (f"({first_block},0)", f"({first_block + blocks},0)", before),
    ).rowcount


def delete_expired_snapshots(conn: psycopg.Connection, now: datetime) -> int:
    """Drop the snapshots past their expiry; returns how many."""
    return conn.execute("DELETE FROM feed_snapshots WHERE expires_at <= %s", (now,)).rowcount
