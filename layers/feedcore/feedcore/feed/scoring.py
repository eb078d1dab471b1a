"""Ranking math of the feed: pure functions, tested without a database."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime, timedelta

from msgspec import Struct

# Keeps the due-ness ratio finite for same-day repurchases and first purchases.
_ONE_DAY = timedelta(days=1).total_seconds()


class BuyAgainParams(Struct, frozen=True):
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


def repeat_probability(item_orders: int, item_buyers: int) -> float:
    """How likely an order of a buyer of the item holds it again, over all its buyers: the share of the orders
    holding it that were not a buyer's first (`item_orders` − `item_buyers` of `item_orders`), Laplace-smoothed,
    so that a staple many rebuy comes near 1, a one-off many tried near 0, and an item few bought near a half."""
    return (item_orders - item_buyers + 1) / (item_orders + 2)


def buy_again_score(
    purchase_raw: float, purchase_count: int, first: datetime, last: datetime, now: datetime, params: BuyAgainParams,
    item_orders: int, item_buyers: int,
) -> float:  # fmt: skip
    """Decayed purchase frequency (epoch-relative) boosted by replenishment timing — milk bought weekly and
    last bought six days ago outranks milk bought as often but yesterday — times how often the item's buyers buy
    it again (repeat_probability): of two items the user bought as often, the one people rebuy comes first.
    Comparable between one user's items."""
    timing = 1 + params.due_weight * due_ness(purchase_count, first, last, now, params.due_width)
    return purchase_raw * timing * repeat_probability(item_orders, item_buyers)


def rebuy_rate(order_count: int, first: datetime, ordered_at: Sequence[datetime]) -> float:
    """Share of the user's orders after the item's first purchase that held it again, from the orders holding it
    (`order_count`) and the user's order instants in time order (both as the recompute counts them, see
    feedcore.db.orders): 1 for a staple of every basket, 0 for an item bought in one order or with no later
    order known."""
    later = len(ordered_at) - bisect_right(ordered_at, first)
    return (order_count - 1) / later if later else 0.0
