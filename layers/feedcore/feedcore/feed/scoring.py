"""Ranking math of the feed: pure functions, tested without a database."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate
from operator import itemgetter

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


@dataclass(frozen=True)
class UserOrders:
    """The user's orders as far as their item rows tell: each order is one instant for all its items."""

    instants: tuple[datetime, ...] = ()  # every first or last purchase of an item, in time order
    firsts: tuple[datetime, ...] = ()  # each item's first purchase, in time order
    most_bought_since: tuple[int, ...] = ()  # the most purchases of an item first bought at or after firsts[i]

    @classmethod
    def of(cls, purchases: Iterable[tuple[datetime | None, datetime | None, int]]) -> UserOrders:
        """From (first purchase, last purchase, purchase count) per item; items never bought are skipped."""
        rows = [row for row in purchases if row[0] is not None]
        rows.sort(key=itemgetter(0))
        firsts = tuple(row[0] for row in rows)
        most = list(accumulate(map(itemgetter(2), reversed(rows)), max))
        most.reverse()
        return cls(tuple(sorted({*firsts, *map(itemgetter(1), rows)})), firsts, tuple(most))

    def after(self, instant: datetime) -> int:
        """At least how many orders came after `instant`: each first or last purchase after it is one, an item
        first bought after it was bought in as many, and one first bought at `instant` in one fewer."""
        bound = len(self.instants) - bisect_right(self.instants, instant)
        at, later = bisect_left(self.firsts, instant), bisect_right(self.firsts, instant)
        if at < len(self.firsts):
            bound = max(bound, self.most_bought_since[at] - 1)
        if later < len(self.firsts):
            bound = max(bound, self.most_bought_since[later])
        return bound


def rebuy_rate(purchase_count: int, first: datetime, orders: UserOrders) -> float:
    """Share of the user's orders after the item's first purchase that bought it again: 1 for a staple of
    every basket, 0 for an item bought once or with no later order known."""
    later = orders.after(first)
    return (purchase_count - 1) / later if later else 0.0
