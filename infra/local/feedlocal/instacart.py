"""Offline evaluation on the Instacart Market Basket Analysis file format (`feedctl eval-instacart`).

Every prior order is replayed as a purchase event through the real ingestion code, each user's `train`
order being placed at one common evaluation time and the earlier orders before it (from
`days_since_prior_order` and `order_hour_of_day`). The real recompute runs, each evaluated user's feed is
assembled at the evaluation time by the real feed code, and its `buy_again` section and its first K
distinct items are compared with the held-out `train` basket — next to three baselines computed by this
same harness: P-TopFreq (the user's most frequently bought items), G-TopFreq (the globally most bought) and
TIFU-KNN (Hu et al., SIGIR 2020: a time-decayed repeat vector blended with the nearest users' vectors).
Every metric is also given for two fixed halves of the users: choose settings on one, report on the other.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import math
import os
import random
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import batched
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from feedcore.api.catalog_models import CatalogItem
from feedcore.api.models import IDENTIFIER_CHARACTERS, MAX_IDENTIFIER_LENGTH
from feedcore.errors import InvalidArgument
from feedcore.feed.config import RankingConfig
from feedcore.feed.experiments import Assignment
from feedlocal.progress import progress

STORE_ID = "instacart"
UNIT_PRICE = Decimal("1.00")  # the files have no prices
REPLAY_HORIZON_DAYS = 3650
# add_to_cart_order of a flat table: far above any real basket (Instacart's largest holds 145 products).
MAX_CART_POSITION = 10_000
EVENT_NAMESPACE = uuid.UUID("6f1c1f3e-64c5-4d7e-9a55-3c1f7a0d2b11")
# A user, order or product id of the files, which becomes an identifier of the API with a one-letter prefix.
_FILE_ID = re.compile(rf"[{IDENTIFIER_CHARACTERS}]{{1,{MAX_IDENTIFIER_LENGTH - 1}}}")


class InvalidDataset(InvalidArgument):
    """A file of the dataset is missing, not UTF-8 CSV, lacks a column, or has a value out of the format."""


@dataclass
class Order:
    order_id: str
    user_id: str
    number: int
    hour: int
    days_since_prior: float | None
    products: list[str] = field(default_factory=list)


@dataclass
class UserHistory:
    user_id: str
    prior: list[Order]  # in order_number order
    train: Order


def _refused(path: Path, line: int, reason: str) -> InvalidDataset:
    """The error for a row out of the format, naming where it is (built only then: rows are read by the million)."""
    return InvalidDataset(f"{path}, line {line}: {reason}")


def _rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of a CSV file with at least `columns`, each with its line number (for errors); raises
    InvalidDataset when the file is missing, not UTF-8 CSV or lacks a column, or a row lacks a value."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            fieldnames = reader.fieldnames or ()
            if missing := [column for column in columns if column not in fieldnames]:
                raise InvalidDataset(f"{path}: no column {', '.join(missing)} (expected {', '.join(columns)})")
            # A short row lacks the values of the last columns: it lacks one of `columns` exactly when it lacks
            # the rightmost of them (the last place a column's name appears: that value is the one kept).
            last = fieldnames[max(i for i, name in enumerate(fieldnames) if name in columns)]
            for row in reader:
                if row[last] is None:
                    raise _refused(path, reader.line_num, "fewer values than columns")
                yield reader.line_num, row
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InvalidDataset(f"{path}: {error}") from error


def _file_id(value: str, column: str, path: Path, line: int) -> str:
    if not _FILE_ID.fullmatch(value):
        raise _refused(path, line, f"{column} {value[:80]!r} is not 1–63 letters, digits or _ . : -")
    return value


def _order(row: dict[str, str], path: Path, line: int) -> Order:
    """The order of a row of orders.csv; raises InvalidDataset for a value out of the format."""
    order_id = _file_id(row["order_id"], "order_id", path, line)
    user_id = _file_id(row["user_id"], "user_id", path, line)
    try:
        number, hour = int(row["order_number"]), int(row["order_hour_of_day"])
        days = float(row["days_since_prior_order"]) if row["days_since_prior_order"] else None
    except ValueError as error:
        raise _refused(path, line, str(error)) from error
    if not 0 <= hour <= 23 or (days is not None and not 0 <= days <= REPLAY_HORIZON_DAYS):
        raise _refused(path, line, "order_hour_of_day must be 0–23 and days_since_prior_order 0–3650 or empty")
    return Order(order_id, user_id, number, hour, days)


def _whole_number(value: str, column: str, low: int, high: int, path: Path, line: int) -> int | None:
    """A whole number from `low` to `high` (written as one, or as a float with nothing after the point, as a
    table exported through pandas has it), or None when empty; raises InvalidDataset otherwise."""
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (low <= number <= high and number.is_integer()):  # also refuses nan
        raise _refused(path, line, f"{column} must be a whole number from {low} to {high} or empty, not {value[:80]!r}")
    return int(number)


def load(directory: Path, max_users: int | None = None) -> tuple[list[UserHistory], list[CatalogItem]]:
    """The users that have a `train` order (at most `max_users`, by user id) and the catalog items of the products
    they bought (named from products.csv when it is given). Raises InvalidDataset when a file is missing or out of
    the format."""
    orders: dict[str, Order] = {}
    train_users: set[str] = set()
    eval_set: dict[str, str] = {}
    columns = ("order_id", "user_id", "eval_set", "order_number", "order_hour_of_day", "days_since_prior_order")
    path = directory / "orders.csv"
    for line, row in _rows(path, columns):
        if row["eval_set"] not in ("prior", "train"):
            continue  # the competition's `test` orders have no baskets
        orders[row["order_id"]] = _order(row, path, line)
        eval_set[row["order_id"]] = row["eval_set"]
        if row["eval_set"] == "train":
            train_users.add(row["user_id"])
    chosen = sorted(train_users, key=lambda u: (len(u), u))[:max_users] if max_users else train_users
    chosen = set(chosen)
    checked: set[str] = set()  # product ids found well-formed: each is checked once, not once per order line
    for name in ("order_products__prior.csv", "order_products__train.csv"):
        path = directory / name
        for line, row in _rows(path, ("order_id", "product_id")):
            order = orders.get(row["order_id"])
            if order is not None and order.user_id in chosen:
                if (product := row["product_id"]) not in checked:
                    checked.add(_file_id(product, "product_id", path, line))
                order.products.append(product)
    by_user: dict[str, list[Order]] = defaultdict(list)
    for order in orders.values():
        if order.user_id in chosen:
            by_user[order.user_id].append(order)
    histories = []
    for user_id, user_orders in sorted(by_user.items(), key=lambda item: (len(item[0]), item[0])):
        user_orders.sort(key=lambda o: o.number)
        train = [o for o in user_orders if eval_set[o.order_id] == "train"]
        prior = [o for o in user_orders if eval_set[o.order_id] == "prior" and o.products]
        if train and train[0].products and prior:
            histories.append(UserHistory(user_id, prior, train[0]))
    bought = {p for h in histories for o in [*h.prior, h.train] for p in o.products}
    catalog: dict[str, CatalogItem] = {}
    path = directory / "products.csv"
    if path.exists():
        for line, row in _rows(path, ("product_id",)):
            if row["product_id"] in bought:
                catalog[row["product_id"]] = _catalog_item(row["product_id"], row, path, line)
    for product in bought - catalog.keys():
        catalog[product] = _catalog_item(product, {}, path, 0)
    return histories, [catalog[product] for product in sorted(catalog, key=lambda p: (len(p), p))]


# The columns of products.csv each field of a catalog item is made of.
_PRODUCT_COLUMNS = {"name": "product_name", "department": "department_id", "aisle": "aisle_id"}


def _catalog_item(product: str, row: dict[str, str], path: Path, line: int) -> CatalogItem:
    """The catalog item of a product bought, from its row of products.csv (empty when it has none); raises
    InvalidDataset when the row's values make no valid item."""
    try:
        return CatalogItem.model_validate({
            "item_id": f"p{product}",
            "name": (row.get("product_name") or f"Product {product}")[:200],
            "department": f"department {row.get('department_id', 'unknown')}",
            "aisle": f"aisle {row.get('aisle_id', 'unknown')}",
            "price": UNIT_PRICE,
        })  # fmt: skip
    except ValidationError as error:  # only a row's values can be wrong: the product id was checked when read
        first = error.errors(include_url=False)[0]
        column = _PRODUCT_COLUMNS.get(str(first["loc"][0]), str(first["loc"][0]))
        raise _refused(path, line, f"{column} {row.get(column, '')[:80]!r}: {first['msg']}") from None


def order_times(history: UserHistory, evaluated_at: datetime) -> dict[str, datetime]:
    """When each prior order happened, counting back from the train order placed at `evaluated_at`."""
    times: dict[str, datetime] = {}
    day = evaluated_at.replace(hour=0, minute=0, second=0, microsecond=0)
    later = history.train
    for order in reversed(history.prior):
        day -= timedelta(days=later.days_since_prior or 0)
        times[order.order_id] = min(day + timedelta(hours=order.hour), evaluated_at - timedelta(minutes=1))
        later = order
    return times


def purchase_events(histories: Sequence[UserHistory], evaluated_at: datetime) -> Iterator[dict[str, Any]]:
    """Every prior order as a purchase event in the API's JSON shape (ids derived from the order ids)."""
    for history in histories:
        times = order_times(history, evaluated_at)
        for order in history.prior:
            yield {
                "event_id": str(uuid.uuid5(EVENT_NAMESPACE, order.order_id)),
                "type": "purchase",
                "user_id": f"u{history.user_id}",
                "store_id": STORE_ID,
                "occurred_at": times[order.order_id].isoformat(),
                "order_id": f"o{order.order_id}",
                "items": [
                    {"item_id": f"p{product}", "quantity": 1, "unit_price": float(UNIT_PRICE)}
                    for product in dict.fromkeys(order.products)  # one line per product
                ],
            }


# --- metrics ------------------------------------------------------------------------------------------


def recall_at_k(ranked: Sequence[str], basket: set[str], k: int) -> float:
    """Share of the basket found in the first k recommendations."""
    return len(set(ranked[:k]) & basket) / len(basket)


def ndcg_at_k(ranked: Sequence[str], basket: set[str], k: int) -> float:
    """Binary-relevance NDCG; the ideal ranking puts min(k, |basket|) hits first."""
    dcg = sum(1 / math.log2(position + 2) for position, item in enumerate(ranked[:k]) if item in basket)
    ideal = sum(1 / math.log2(position + 2) for position in range(min(k, len(basket))))
    return dcg / ideal


def p_topfreq(history: UserHistory, k: int) -> list[str]:
    """The user's k most bought products; ties go to the most recently bought."""
    counts: Counter[str] = Counter()
    last_bought: dict[str, int] = {}
    for order in history.prior:
        for product in set(order.products):
            counts[product] += 1
            last_bought[product] = order.number
    return sorted(counts, key=lambda p: (-counts[p], -last_bought[p], p))[:k]


def g_topfreq(histories: Iterable[UserHistory], k: int) -> list[str]:
    """The k products in most prior orders over all users."""
    counts: Counter[str] = Counter()
    for history in histories:
        for order in history.prior:
            counts.update(set(order.products))
    return [product for product, _ in sorted(counts.items(), key=lambda pc: (-pc[1], pc[0]))[:k]]


@dataclass(frozen=True)
class TifuKnn:
    """TIFU-KNN's hyperparameters (Hu et al., SIGIR 2020), at the values its authors use for Instacart."""

    groups: int = 3  # the history is cut into this many consecutive groups of baskets
    basket_decay: float = 0.9  # a basket's weight: basket_decay ** (baskets after it)
    group_decay: float = 0.7  # a group's weight: group_decay ** (groups after it)
    alpha: float = 0.9  # share of the user's own vector; the rest is the mean of the neighbours' vectors
    neighbours: int = 900  # capped at the number of other users


def _groups(orders: Sequence[Order], count: int) -> list[Sequence[Order]]:
    """Consecutive groups of near-equal size, the larger ones last (as the authors' code cuts them); one
    order per group when there are fewer orders than groups."""
    if len(orders) < count:
        return [[order] for order in orders]
    size, larger = divmod(len(orders), count)
    groups, start = [], 0
    for index in range(count):
        end = start + size + (index >= count - larger)
        groups.append(orders[start:end])
        start = end
    return groups


def tifu_vector(history: UserHistory, params: TifuKnn) -> dict[str, float]:
    """The user's repeat vector: each basket a 0/1 vector decayed by its age in baskets, averaged within its
    group; the groups decayed by their age in groups and averaged."""
    weights = {
        order.order_id: params.basket_decay ** (len(history.prior) - 1 - n) for n, order in enumerate(history.prior)
    }
    vector: dict[str, float] = defaultdict(float)
    groups = _groups(history.prior, params.groups)
    for index, group in enumerate(groups):
        group_weight = params.group_decay ** (params.groups - 1 - index) / len(groups) / len(group)
        for order in group:
            for product in set(order.products):
                vector[product] += weights[order.order_id] * group_weight
    return vector


def tifu_knn(histories: Sequence[UserHistory], k: int, params: TifuKnn = TifuKnn()) -> dict[str, list[str]]:
    """Each user's k items by TIFU-KNN: alpha times the user's own vector plus (1 - alpha) times the mean
    vector of the user's nearest neighbours by Euclidean distance (over the other users' prior orders)."""
    vectors = {h.user_id: tifu_vector(h, params) for h in histories}
    others = len(vectors) - 1
    neighbours = min(params.neighbours, others)
    everyone: dict[str, float] = defaultdict(float)  # when every other user is a neighbour: all minus the user
    for vector in vectors.values():
        for product, weight in vector.items():
            everyone[product] += weight
    ranked = {}
    for user, vector in vectors.items():
        if neighbours == others:
            near = {product: weight - vector.get(product, 0.0) for product, weight in everyone.items()}
        else:
            near = defaultdict(float)
            for other in _nearest(user, vectors, neighbours):
                for product, weight in vectors[other].items():
                    near[product] += weight
        share = (1 - params.alpha) / max(neighbours, 1)
        scores = {product: share * weight + params.alpha * vector.get(product, 0.0) for product, weight in near.items()}
        scores.update({p: params.alpha * w for p, w in vector.items() if p not in near})
        ranked[user] = heapq.nsmallest(k, scores, key=lambda p: (-scores[p], p))
    return ranked


def _nearest(user: str, vectors: dict[str, dict[str, float]], count: int) -> list[str]:
    """The `count` other users closest to `user` by Euclidean distance (ties by user id)."""
    mine = vectors[user]

    def distance(other: str) -> float:
        theirs = vectors[other]
        return sum((w - theirs.get(p, 0.0)) ** 2 for p, w in mine.items()) + sum(
            w * w for p, w in theirs.items() if p not in mine
        )

    return sorted((other for other in vectors if other != user), key=lambda other: (distance(other), other))[:count]


@dataclass
class MetricSum:
    recall: float = 0.0
    ndcg: float = 0.0

    def add(self, ranked: Sequence[str], basket: set[str], k: int) -> None:
        self.recall += recall_at_k(ranked, basket, k)
        self.ndcg += ndcg_at_k(ranked, basket, k)

    def __add__(self, other: MetricSum) -> MetricSum:
        return MetricSum(self.recall + other.recall, self.ndcg + other.ndcg)

    def mean(self, users: int) -> dict[str, float]:
        return {"recall": round(self.recall / users, 4), "ndcg": round(self.ndcg / users, 4)}


METHODS = ("buy_again", "feed", "p_topfreq", "g_topfreq", "tifu_knn")


def user_half(user_id: str) -> str:
    """The fixed half of the users ("a" or "b") a user belongs to, by a hash of the id."""
    return "ab"[hashlib.sha256(user_id.encode()).digest()[0] % 2]


# --- the run ----------------------------------------------------------------------------------------


def evaluate(directory: Path, k: int, max_users: int | None = None) -> dict[str, Any]:
    """Replay, recompute, assemble and score; returns the metrics (the caller prints them as JSON)."""
    from feedcore.api.catalog_models import Store, StoreAvailability
    from feedcore.api.event_models import EventBatch
    from feedcore.db import catalog as catalog_db
    from feedcore.db.connection import run
    from feedcore.feed.experiments import configured_ranking_config
    from feedcore.feed.service import FeedRequest, assemble_feed
    from feedcore.ingestion.service import ingest_batch
    from feedcore.scoring.service import RecomputeRequest, recompute_scores

    histories, catalog = load(directory, max_users)
    if not histories:
        raise InvalidDataset(f"no users with prior and train orders in {directory}")
    evaluated_at = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    def load_catalog(conn) -> None:
        catalog_db.upsert_stores(conn, [Store(store_id=STORE_ID, name="Instacart")])
        catalog_db.upsert_items(conn, catalog)
        catalog_db.upsert_availability(
            conn, [StoreAvailability(store_id=STORE_ID, item_id=item.item_id) for item in catalog]
        )

    run(load_catalog)
    stored = 0
    with _late_event_horizon_days(REPLAY_HORIZON_DAYS):
        orders = sum(len(h.prior) for h in histories)
        replay = batched(purchase_events(histories, evaluated_at), 500)
        for batch in progress(replay, -(-orders // 500), "replaying prior orders", "batches of 500"):
            result = ingest_batch(EventBatch.model_validate({"events": list(batch)}), now=evaluated_at)
            if result.rejected:
                raise InvalidDataset(f"replayed orders were rejected: {result.rejections[:3]}")
            stored += result.accepted
    recompute_scores(RecomputeRequest(mode="full"), now=evaluated_at)

    sums = {half: {name: MetricSum() for name in METHODS} for half in "ab"}
    users = Counter(user_half(h.user_id) for h in histories)
    global_top = g_topfreq(histories, k)
    tifu_top = tifu_knn(histories, k)
    assignment = evaluation_assignment(configured_ranking_config(), k)
    for history in progress(histories, len(histories), "assembling feeds", "users"):
        basket = set(history.train.products)
        request = FeedRequest(
            user_id=f"u{history.user_id}", store_id=STORE_ID, page_sections=len(assignment.config.sections)
        )
        feed = assemble_feed(request, now=evaluated_at, assignment=assignment)
        sections = {s["id"]: [item["item_id"].removeprefix("p") for item in s["items"]] for s in feed.sections}
        ranked = {
            "buy_again": sections.get("buy_again", []),
            "feed": list(dict.fromkeys(item for items in sections.values() for item in items)),
            "p_topfreq": p_topfreq(history, k),
            "g_topfreq": global_top,
            "tifu_knn": tifu_top[history.user_id],
        }
        for name, items in ranked.items():
            sums[user_half(history.user_id)][name].add(items, basket, k)
    halves = {
        half: {"users": users[half], **{name: sums[half][name].mean(users[half]) for name in METHODS}}
        for half in "ab"
        if users[half]
    }
    return {
        "users": len(histories),
        "k": k,
        "events": stored,
        **{name: (sums["a"][name] + sums["b"][name]).mean(len(histories)) for name in METHODS},
        "halves": halves,
    }


def evaluation_assignment(ranking: RankingConfig, k: int) -> Assignment:
    """The base ranking config with every section `k` items long, on one page: what is evaluated."""
    sections = [section.model_copy(update={"size": k}) for section in ranking.base.sections]
    return Assignment(
        experiment=None, variant="evaluation", config=ranking.base.model_copy(update={"sections": sections})
    )


@contextmanager
def _late_event_horizon_days(days: int) -> Iterator[None]:
    """The histories reach back further than live traffic may: widen ingestion's horizon for the replay."""
    from feedcore.settings import ingest_settings

    previous = os.environ.get("INGEST_LATE_EVENT_HORIZON_DAYS")
    os.environ["INGEST_LATE_EVENT_HORIZON_DAYS"] = str(days)
    ingest_settings.cache_clear()
    try:
        yield
    finally:
        if previous is None:
            del os.environ["INGEST_LATE_EVENT_HORIZON_DAYS"]
        else:
            os.environ["INGEST_LATE_EVENT_HORIZON_DAYS"] = previous
        ingest_settings.cache_clear()


# --- data in this format -------------------------------------------------------------------------------


FLAT_COLUMNS = ("order_id", "user_id", "order_number", "order_dow", "order_hour_of_day", "days_since_prior_order",
                "product_id", "add_to_cart_order", "reordered")  # fmt: skip


def split_flat_table(flat_csv: Path, out: Path) -> int:
    """Turn one table of order lines (orders joined with their products: order_id, user_id, order_number,
    order_dow, order_hour_of_day, days_since_prior_order, product_id, add_to_cart_order, reordered) into
    the competition's files, holding out each user's last order as `train`. Returns the number of users; raises
    InvalidDataset when the table is missing or out of the format."""
    orders: dict[str, tuple[Order, str]] = {}  # each order with its order_dow
    order_lines: dict[str, list[tuple[str, int | None, int | None]]] = defaultdict(list)
    for line, row in _rows(flat_csv, FLAT_COLUMNS):  # all read and checked before anything is written
        order = _order(row, flat_csv, line)
        product_id = _file_id(row["product_id"], "product_id", flat_csv, line)
        position = _whole_number(row["add_to_cart_order"], "add_to_cart_order", 1, MAX_CART_POSITION, flat_csv, line)
        reordered = _whole_number(row["reordered"], "reordered", 0, 1, flat_csv, line)
        orders.setdefault(order.order_id, (order, row["order_dow"]))
        order_lines[order.order_id].append((product_id, position, reordered))
    last_order: dict[str, Order] = {}
    for order, _ in orders.values():
        last = last_order.get(order.user_id)
        if last is None or order.number > last.number:
            last_order[order.user_id] = order
    train = {order.order_id for order in last_order.values()}
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "orders.csv", ["order_id", "user_id", "eval_set", "order_number", "order_dow", "order_hour_of_day",
                                "days_since_prior_order"],
           ([o.order_id, o.user_id, "train" if o.order_id in train else "prior", o.number, dow, o.hour,
             "" if o.days_since_prior is None else int(o.days_since_prior)] for o, dow in orders.values()))  # fmt: skip
    for name, keep in (("order_products__prior.csv", False), ("order_products__train.csv", True)):
        _write(out / name, ["order_id", "product_id", "add_to_cart_order", "reordered"],  # None is written empty
               ([o, *line] for o, lines in order_lines.items() if (o in train) == keep for line in lines))  # fmt: skip
    return len(last_order)


def _write(path: Path, header: list[str], rows: Iterable[Sequence[Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_synthetic(out: Path, users: int = 60, seed: int = 5) -> None:
    """A small dataset in the competition's format: shoppers with weekly, fortnightly and monthly staples,
    occasional one-off items and popular products, so that timing and frequency both matter."""
    rng = random.Random(seed)
    catalog = [str(p) for p in range(1, 301)]
    popular = catalog[:20]
    orders_rows, prior_rows, train_rows = [], [], []
    order_id = 1000
    for user in range(1, users + 1):
        staples = {p: rng.choice((7, 7, 14, 30)) for p in rng.sample(catalog[20:], rng.randint(6, 14))}
        due_at = {p: rng.uniform(0, cycle) for p, cycle in staples.items()}
        day, number = 0.0, 0
        order_count = rng.randint(8, 20)
        while number < order_count:
            gap = rng.randint(3, 9)
            day += gap
            basket = [p for p, at in due_at.items() if at <= day + rng.uniform(-1.5, 1.5)]
            for p in basket:
                due_at[p] = day + staples[p] * rng.uniform(0.85, 1.15)
            basket += rng.sample(catalog[20:], rng.randint(0, 3)) + rng.sample(popular, rng.randint(0, 2))
            basket = list(dict.fromkeys(basket))
            if not basket:
                continue
            number += 1
            eval_set = "train" if number == order_count else "prior"
            orders_rows.append([order_id, user, eval_set, number, rng.randint(0, 6), rng.randint(7, 21),
                                "" if number == 1 else gap])  # fmt: skip
            target = train_rows if eval_set == "train" else prior_rows
            target += [[order_id, p, position + 1, 0] for position, p in enumerate(basket)]
            order_id += 1
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "orders.csv", ["order_id", "user_id", "eval_set", "order_number", "order_dow", "order_hour_of_day",
                                "days_since_prior_order"], orders_rows)  # fmt: skip
    header = ["order_id", "product_id", "add_to_cart_order", "reordered"]
    _write(out / "order_products__prior.csv", header, prior_rows)
    _write(out / "order_products__train.csv", header, train_rows)
