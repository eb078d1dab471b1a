"""Assemble a user's feed at a store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from time import perf_counter

from aws_lambda_powertools.metrics import MetricUnit

from feedcore.api.models import Feed
from feedcore.db import feed as feed_db
from feedcore.db.connection import run
from feedcore.feed.scoring import BuyAgainParams
from feedcore.feed.sections import SECTIONS, RankingContext, select_sections
from feedcore.observability import logger, metrics
from feedcore.settings import feed_settings, scoring_settings

# Candidates read per source for each item shown, so items removed on the page still leave enough.
CANDIDATES_PER_SLOT = 3
# The user's purchased items read for buy-again, by decayed frequency; replenishment timing reorders them.
BUY_AGAIN_POOL = 200


def assemble_feed(user_id: str, store_id: str, section_size: int, *, now: datetime | None = None) -> Feed:
    """The user's feed at the store as of `now` (default: the current time): its sections in order, each at
    most `section_size` items."""
    started = perf_counter()
    as_of = now or datetime.now(UTC)
    per_source = section_size * CANDIDATES_PER_SLOT
    # One read statement: no transaction needed, so one round trip.
    candidates = run(
        lambda conn: feed_db.feed_candidates(conn, user_id, store_id, per_source, BUY_AGAIN_POOL),
        in_transaction=False,
    )
    scoring, ranking = scoring_settings(), feed_settings()
    context = RankingContext(
        now=as_of,
        buy_again=BuyAgainParams(due_weight=ranking.buy_again_due_weight, due_width=ranking.buy_again_due_width),
        buy_again_half_life_days=scoring.buy_again_half_life_days,
    )
    sections = select_sections(candidates, SECTIONS, section_size, context)
    feed = Feed(feed_id=uuid.uuid4().hex, user_id=user_id, store_id=store_id, generated_at=as_of, sections=sections)
    metrics.add_metric(name="FeedLatency", unit=MetricUnit.Milliseconds, value=(perf_counter() - started) * 1000)
    metrics.add_metric(name="FeedItems", unit=MetricUnit.Count, value=sum(len(s.items) for s in sections))
    logger.info(
        "feed assembled",
        extra={"feed_id": feed.feed_id, "sections": {s.id: len(s.items) for s in sections}},
    )
    return feed
