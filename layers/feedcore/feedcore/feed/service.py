"""Assemble a user's feed at a store: run the pipeline, keep the ranked feed as a snapshot, serve pages."""

from __future__ import annotations

import uuid
import weakref
from collections import Counter
from datetime import UTC, datetime, timedelta
from time import monotonic, perf_counter, sleep

import msgspec
from aws_lambda_powertools.metrics import MetricUnit
from msgspec import Struct
from psycopg import Connection

from feedcore.api.models import Fallback
from feedcore.db import feed as feed_db
from feedcore.db.connection import answers_by, run, unconfirmed_wait_s
from feedcore.db.feed import FeedRecord, UserRows, UserRowsQuery
from feedcore.errors import ConfigurationError, DatabaseUnavailable, FeedExpired
from feedcore.feed.config import DEGRADED_VARIANT, FeedConfig
from feedcore.feed.cursors import PagePosition, cursor_keys, decode_cursor, encode_cursor, request_scope
from feedcore.feed.experiments import Assignment, assign, ranking_config
from feedcore.feed.pipeline import (
    POPULAR_SOURCE,
    Ranked,
    RankingContext,
    Removal,
    SourceCandidates,
    popular_fallback,
    select_sections,
)
from feedcore.feed.reasons import reason
from feedcore.feed.scoring import BuyAgainParams
from feedcore.feed.shelves import ShelfCache, ShelfReader, StoreShelf
from feedcore.feed.sources import SourceLimits, aisle_affinities, gather_candidates
from feedcore.observability import add_metrics, count, logger
from feedcore.settings import FeedSettings, feed_settings

# Sources that only a user with history fills: none of them → the new-user fallback.
_PERSONAL_SOURCES = frozenset({"buy_again", "favourite_aisles", "goes_well_with"})
# Popular items kept per store in this container (as ranked; items are built only when served), served when
# the database fails; with the shelf they were ranked from (store-level facts only: ranked once per shelf),
# referred to weakly so that a shelf the cache dropped, and its catalog, are not kept alive.
_cached_popular: dict[str, tuple[weakref.ref[StoreShelf], list[Ranked]]] = {}
# Store shelves this container has read (see feedcore.feed.shelves).
_shelves = ShelfCache()
# The first pause before a snapshot not found yet is read again (doubled each time; see _recorded_snapshot).
_SNAPSHOT_FIRST_RECHECK_S = 0.02


class FeedRequest(Struct, frozen=True):
    """A feed page request: the first page without `cursor`, a later one with it."""

    user_id: str
    store_id: str
    page_sections: int | None = None
    cursor: str | None = None
    exclude_tags: frozenset[str] = frozenset()
    debug: bool = False


class FeedPage(Struct, frozen=True):
    """A page as served: `body` is its JSON document, the contract's Feed (feedcore.api.models), written once
    here rather than built as models and serialized by the route; `sections` are this page's sections as in
    it (dicts of the contract's fields)."""

    body: str
    variant: str
    fallback: Fallback | None
    sections: list[dict]


def assemble_feed(
    request: FeedRequest, *, now: datetime | None = None, assignment: Assignment | None = None
) -> FeedPage:
    """The requested page of the user's feed as of `now` (default: the current time).

    The first page ranks the whole feed (with the user's experiment variant, or `assignment`) and keeps it as
    a snapshot; cursors page through that snapshot, so pages never repeat or skip an item. When the database
    fails, the answer is the container's cached popular items with `degraded` set — never an error.
    Raises InvalidCursor or FeedExpired for a cursor that cannot be followed.
    """
    started = perf_counter()
    as_of = now or datetime.now(UTC)
    settings = feed_settings()
    page = _PageRequest(
        per_page=request.page_sections or settings.page_sections,
        scope=request_scope(request.store_id, request.exclude_tags),
        debug=request.debug,
    )
    try:
        # The page's waits for the database, however many, take at most what one answer may (the statement timeout
        # and a grace): a database slow at every answer gives a degraded page within it, not a bound per answer.
        with answers_by(monotonic() + unconfirmed_wait_s()):
            keys = cursor_keys(as_of)  # before any database work: without them no page can be served with a cursor
            if request.cursor is not None:
                position = decode_cursor(request.cursor, keys, request.user_id, page.scope, as_of)
                feed = _later_page(position, page, keys.signing, as_of)
            else:
                variant = assignment or assign(ranking_config(), request.user_id)
                feed = _first_page(request, page, keys.signing, as_of, variant)
    except (DatabaseUnavailable, ConfigurationError) as exc:
        logger.warning("feed degraded: a dependency is unavailable", extra={"error": str(exc)})
        feed = _degraded(request, as_of)
    _record_served(feed, perf_counter() - started)
    return feed


def forget_store_shelves() -> None:
    """Drop the store shelves this container cached (tests, or a container pointed at another database)."""
    _shelves.clear()


class _PageRequest(Struct, frozen=True):
    per_page: int  # sections
    scope: str  # the store and excluded tags the feed was ranked for (see request_scope)
    debug: bool


def _first_page(
    request: FeedRequest, page: _PageRequest, key: bytes, now: datetime, assignment: Assignment
) -> FeedPage:
    settings, config = feed_settings(), assignment.config
    stage = perf_counter()
    limits = _source_limits(config, settings, now)
    shelf, user = run(lambda conn: _read(conn, request, limits, settings, now), in_transaction=False)
    aisles = aisle_affinities(shelf, user)
    candidates = gather_candidates(shelf, user, aisles, limits)
    query_ms = (perf_counter() - stage) * 1000
    stage = perf_counter()
    context = RankingContext(
        now=now,
        buy_again=BuyAgainParams(due_weight=settings.buy_again_due_weight, due_width=settings.buy_again_due_width),
        filters=config.filters,
        excluded_tags=request.exclude_tags,
        just_purchased=timedelta(days=config.just_purchased_days),
        just_purchased_max_due=config.just_purchased_max_due,
        just_purchased_min_rebuy_rate=config.just_purchased_min_rebuy_rate,
        ordered_at=user.ordered_at,
        aisle_affinities=aisles,
        explain=request.debug,
    )
    selected, removed = select_sections(candidates, config.ordered_sections, context)
    feed_id = uuid.uuid4().hex
    sections = [
        _section(section.spec.id, section.spec.title, section.items, feed_id, request.debug) for section in selected
    ]
    cached = _cached_popular.get(request.store_id)
    if cached is None or cached[0]() is not shelf:
        of_popular = next((source.candidates for source in candidates if source.source == POPULAR_SOURCE), ())
        if popular := popular_fallback(of_popular, context):
            _keep_popular(request.store_id, shelf, popular)
    fallback = _fallback(candidates, shelf.store_known)
    rank_ms = (perf_counter() - stage) * 1000
    stage = perf_counter()
    expires_at = now + timedelta(seconds=settings.snapshot_ttl_s)
    record = FeedRecord(
        feed_id, request.user_id, request.store_id, assignment.experiment, assignment.variant, fallback, now
    )
    # The feed's JSON is written once: the page is its first sections, the snapshot keeps the others.
    head = _head(record, degraded=False)
    texts = [_json(section) for section in sections]
    removals = _json([_removal(r) for r in removed]) if request.debug else "null"
    snapshot = _snapshot(head, texts, page.per_page)
    try:
        # Sent without waiting for its outcome (read before the connection's next use): the page does not wait.
        run(lambda conn: feed_db.record_feed(conn, record, snapshot, expires_at), in_transaction=False)
        add_metrics([("FeedSaveLatency", MetricUnit.Milliseconds, (perf_counter() - stage) * 1000)])
    finally:  # counted and logged once the recording is on its way (the server stores it meanwhile), or failed
        _record_assembled(record, query_ms, rank_ms, candidates, removed, sections)
    first = PagePosition(feed_id, request.user_id, 0, expires_at, page.scope)
    next_cursor = _next_cursor(first, len(sections), page, key)
    body = _document(head, texts[: page.per_page], _json(next_cursor), removals)
    return FeedPage(body, assignment.variant, fallback, sections[: page.per_page])


def _record_assembled(
    record: FeedRecord, query_ms: float, rank_ms: float, candidates: list[SourceCandidates], removed: list[Removal],
    sections: list[dict],
) -> None:  # fmt: skip
    """A first page's stage latencies, candidates per source and removals per filter (metrics), and its log line."""
    per_source = {source.source: len(source.candidates) for source in candidates}
    per_filter = Counter(r.filter for r in removed)
    add_metrics([
        ("FeedQueryLatency", MetricUnit.Milliseconds, query_ms),
        ("FeedRankLatency", MetricUnit.Milliseconds, rank_ms),
        # model:<name> → model.<name> (Datadog-safe)
        *((f"FeedCandidates.{source.replace(':', '.')}", MetricUnit.Count, n) for source, n in per_source.items()),
        *((f"FeedRemoved.{filter_name}", MetricUnit.Count, n) for filter_name, n in per_filter.items()),
    ])  # fmt: skip
    logger.info(
        "feed assembled",
        extra={
            "feed_id": record.feed_id,
            "variant": record.variant,
            "fallback": record.fallback,
            "candidates": per_source,
            "removed": per_filter,
            "sections": {section["id"]: len(section["items"]) for section in sections},
        },
    )


def _later_page(position: PagePosition, page: _PageRequest, key: bytes, now: datetime) -> FeedPage:
    """The page at `position` of the recorded feed: score breakdowns only when this request asks for them (a
    snapshot ranked with debug keeps them); the removed candidates belong to the first page."""
    snapshot = _recorded_snapshot(position, now)
    every_section = snapshot["sections"]
    sections = every_section[position.offset : position.offset + page.per_page]
    if not page.debug:
        sections = [{**s, "items": [{**item, "debug": None} for item in s["items"]]} for s in sections]
    next_cursor = _next_cursor(position, len(every_section), page, key)
    document = {**snapshot, "sections": sections, "next_cursor": next_cursor, "removed": None}
    return FeedPage(_json(document), document["variant"], document["fallback"], sections)


def _recorded_snapshot(position: PagePosition, now: datetime) -> dict:
    """The snapshot of the feed at `position` as of `now`; FeedExpired when it expired or was never recorded.

    A feed is recorded without waiting for the outcome (feed_db.record_feed), so another container may serve
    its next page before the snapshot commits (the same container reads the outcome first). A snapshot not
    found is read again, at growing intervals, until the recording has surely ended (its statement timeout
    and a grace period after the feed was made): a slow recording gives a late page, not a 410.
    """
    created_at = position.expires_at - timedelta(seconds=feed_settings().snapshot_ttl_s)
    settled_at = created_at + timedelta(seconds=unconfirmed_wait_s())
    pause_s = _SNAPSHOT_FIRST_RECHECK_S
    while True:
        found = run(
            lambda conn: feed_db.feed_snapshot(conn, position.feed_id, position.user_id, now), in_transaction=False
        )
        if found is not None:
            if found.expired:
                raise FeedExpired(position.feed_id)
            return found.sections
        left_s = (settled_at - datetime.now(UTC)).total_seconds()
        if left_s <= 0:
            raise FeedExpired(position.feed_id)
        sleep(min(pause_s, left_s))
        pause_s *= 2


def _keep_popular(store_id: str, shelf: StoreShelf, popular: list[Ranked]) -> None:
    """Keep the store's popular items for the degraded mode, and forget those of the shelves the shelf cache
    has dropped: the lists stay as many as the shelves the container holds, whatever store ids clients send."""
    # A copy of the items (made at once) and pop: the local server's threads may keep lists at the same time.
    for dropped in [store for store, (held, _) in list(_cached_popular.items()) if held() is None]:
        _cached_popular.pop(dropped, None)
    _cached_popular[store_id] = (weakref.ref(shelf), popular)


def _next_cursor(position: PagePosition, sections: int, page: _PageRequest, key: bytes) -> str | None:
    """The cursor of the page after the one at `position` of a feed of `sections`; None on the last page."""
    end = position.offset + page.per_page
    if end >= sections:
        return None
    following = PagePosition(position.feed_id, position.user_id, end, position.expires_at, position.scope)
    return encode_cursor(following, key)


def _degraded(request: FeedRequest, now: datetime) -> FeedPage:
    """The cached popular items of the store (none if this container has not served the store yet)."""
    feed_id = uuid.uuid4().hex
    popular = [
        ranked
        for ranked in _cached_popular.get(request.store_id, (None, []))[1]
        if request.exclude_tags.isdisjoint(ranked.candidate.tags)
    ]
    sections = [_section(POPULAR_SOURCE, "Popular at your store", popular, feed_id, False)] if popular else []
    record = FeedRecord(feed_id, request.user_id, request.store_id, None, DEGRADED_VARIANT, "cached_popular", now)
    body = _document(_head(record, degraded=True), [_json(section) for section in sections], "null", "null")
    return FeedPage(body, record.variant, "cached_popular", sections)


# The contract's Feed, written as JSON from plain values in its fields' order (as the model would be;
# tests/integration/test_assemble_feed.py validates served pages against it): building ~70 item models, copying
# them per page and serializing them twice (snapshot, response) was ~15 % of a first page. Encoded by msgspec,
# ~2.5× faster than pydantic-core's to_json and the same text for the values a feed holds (strings, None,
# booleans, integers, finite floats below 1e16, datetimes: tests/unit/test_feed_pipeline.py compares them).
_json_encoder = msgspec.json.Encoder()


def _json(value: object) -> str:
    return _json_encoder.encode(value).decode()


def _head(record: FeedRecord, *, degraded: bool) -> str:
    """The Feed's fields before `sections`, as an unclosed JSON object."""
    head = {
        "feed_id": record.feed_id, "user_id": record.user_id, "store_id": record.store_id,
        "generated_at": record.created_at, "experiment": record.experiment, "variant": record.variant,
        "fallback": record.fallback, "degraded": degraded,
    }  # fmt: skip
    return _json(head)[:-1]


def _document(head: str, sections: list[str], next_cursor: str, removed: str) -> str:
    """A Feed document from its head, its sections' JSON and the JSON of next_cursor and removed."""
    return f'{head},"sections":[{",".join(sections)}],"next_cursor":{next_cursor},"removed":{removed}}}'


def _snapshot(head: str, sections: list[str], served: int) -> str:
    """The Feed document kept for later pages: cursors start past the first page (`served` sections), so its
    sections are null there (in their places: a cursor's offset indexes the feed's sections) and only the
    later ones are kept, and without removals (a first page's own). ~3× less for the server to check, compress
    and store than the whole feed, and the same later pages (a snapshot of every section serves the same)."""
    return _document(head, ["null"] * min(served, len(sections)) + sections[served:], "null", "null")


def _section(section_id: str, title: str, items: list[Ranked], feed_id: str, debug: bool) -> dict:
    return {
        "id": section_id,
        "title": title,
        "items": [_item(ranked, feed_id, section_id, position, debug) for position, ranked in enumerate(items)],
    }


def _item(ranked: Ranked, feed_id: str, section_id: str, position: int, debug: bool) -> dict:
    """A FeedItem of the contract. Not validated: every value comes typed and checked from the database (NOT
    NULL, price CHECK)."""
    candidate = ranked.candidate
    return {
        "item_id": candidate.item_id, "name": candidate.name, "brand": candidate.brand,
        "department": candidate.department, "aisle": candidate.aisle, "price": candidate.price,
        "reason": reason(ranked), "tracking": f"{feed_id}:{section_id}:{position}",
        "debug": {
            "source": candidate.source, "score": round(ranked.score, 6),
            "contributions": {name: round(value, 6) for name, value in ranked.contributions.items()},
            "backfill": ranked.backfill,
        } if debug else None,
    }  # fmt: skip


def _removal(removal: Removal) -> dict:
    return {"item_id": removal.item_id, "source": removal.source, "filter": removal.filter}


def _source_limits(config: FeedConfig, settings: FeedSettings, now: datetime) -> SourceLimits:
    shown = config.ordered_sections
    largest_section = max(section.size for section in shown)
    return SourceLimits(
        # Popular items are always read: they backfill starving sections and feed the degraded mode.
        sources=frozenset(section.source for section in shown) | {POPULAR_SOURCE},
        models=config.models,
        pool=largest_section * config.candidates_per_slot,
        buy_again_pool=settings.buy_again_pool,
        favourite_aisles=config.favourite_aisles,
        new_since=now - timedelta(days=config.new_arrival_days),
    )


def _read(
    conn: Connection, request: FeedRequest, limits: SourceLimits, settings: FeedSettings, now: datetime
) -> tuple[StoreShelf, UserRows]:
    """The store's shelf (cached for FEED_STORE_SHELF_TTL_S) and the user's own rows (read every time)."""
    reader = ShelfReader(
        catalog=lambda: feed_db.catalog(conn),
        pack=lambda have, have_reorders: feed_db.store_shelf_pack(conn, request.store_id, have, have_reorders),
        store_rows=lambda: feed_db.store_rows(conn, request.store_id),
        item_model_scores=lambda: feed_db.item_model_scores(conn, limits.models),
    )
    shelf = _shelves.shelf(
        request.store_id, limits.models, settings.store_shelf_ttl_s, settings.store_shelf_cache_size, reader
    )
    query = UserRowsQuery(
        user_id=request.user_id,
        models=limits.models,
        pairs="goes_well_with" in limits.sources,
        pool=limits.pool,
        buy_again_pool=limits.buy_again_pool,
        recent_since=now - timedelta(minutes=settings.realtime_window_minutes),
        reorders=shelf.item_orders is None,  # a shelf packed with the reorder counts: not probed per user
    )
    return shelf, feed_db.user_rows(conn, query)


def _fallback(candidates: list[SourceCandidates], store_known: bool) -> Fallback | None:
    """The page's fallback from each source's candidates (none empty): "global" at a store the catalog does not
    know; "new_user" when no personal source proposes and no candidate is in the cart or lately bought or carted."""
    if candidates and not store_known:
        return "global"
    if not any(source.source in _PERSONAL_SOURCES for source in candidates) and not any(
        c.in_cart or c.recent_positive_at for source in candidates for c in source.candidates
    ):
        return "new_user"
    return None


def _record_served(feed: FeedPage, elapsed_s: float) -> None:
    add_metrics([
        ("FeedLatency", MetricUnit.Milliseconds, elapsed_s * 1000),
        ("FeedItems", MetricUnit.Count, sum(len(s["items"]) for s in feed.sections)),
    ])  # fmt: skip
    count("FeedServed", variant=feed.variant, fallback=feed.fallback or "none")
