"""Ranking math of the feed: pure functions, tested without a database."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

# Keeps the due-ness ratio finite for same-day repurchases and first purchases.
_ONE_DAY = timedelta(days=1).total_seconds()


@dataclass(frozen=True)
class BuyAgainParams:
    """How much the replenishment timing counts next to the decayed purchase frequency."""

    due_weight: float = 0.5
    due_width: float = 0.7  # width of the timing kernel in log(elapsed / usual interval)


def due_ness(purchase_count: int, first: datetime, last: datetime, now: datetime, width: float) -> float:
    """How due the item is now, 0..1: 1 when the time since the last purchase equals the user's usual
    interval between purchases of it, falling off on a log scale either side. 0 for a single purchase."""
    if purchase_count < 2:
        return 0.0
    interval = (last - first).total_seconds() / (purchase_count - 1)
    elapsed = max((now - last).total_seconds(), 0.0)
    ratio = (elapsed + _ONE_DAY) / (interval + _ONE_DAY)
    return math.exp(-(math.log(ratio) ** 2) / (2 * width**2))


def buy_again_score(
    purchase_raw: float, purchase_count: int, first: datetime, last: datetime, now: datetime, params: BuyAgainParams
) -> float:
    """Decayed purchase frequency (epoch-relative) boosted by replenishment timing: milk bought weekly and
    last bought six days ago outranks milk bought as often but yesterday. Comparable between one user's
    items."""
    return purchase_raw * (1 + params.due_weight * due_ness(purchase_count, first, last, now, params.due_width))


def rebuy_rate(order_count: int, first: datetime, ordered_at: Sequence[datetime]) -> float:
    """Share of the user's orders after the item's first purchase that held it again, from the orders holding it
    (`order_count`) and the user's order instants in time order (both as the recompute counts them, see
    feedcore.db.orders): 1 for a staple of every basket, 0 for an item bought in one order or with no later
    order known."""
    later = len(ordered_at) - bisect_right(ordered_at, first)
    return (order_count - 1) / later if later else 0.0
