"""Benchmarks that print their figures as a final JSON line (`feedctl bench …`).

Each runs against a scratch database on the server `feedctl` uses (embedded unless DATABASE_URL is set),
dropped afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from feedcore.errors import InvalidArgument
from feedcore.observability import logger
from feedcore.settings import ingest_settings
from feedlocal.embedded import kept_database, point_feedcore_at, scratch_database
from feedlocal.progress import progress

REPO_ROOT = Path(__file__).resolve().parents[3]
# The columns a raw COPY writes: everything the ingestion path stores (received_at takes its default).
EVENT_COLUMNS = (
    "event_id", "occurred_at", "event_type", "user_id", "store_id", "item_id", "quantity", "order_id",
    "line_item_ids", "line_quantities", "line_unit_prices", "feed_id", "section", "position",
)  # fmt: skip


def load_handler_module(function: str):
    """functions/<function>/app.py, imported as Lambda imports it."""
    spec = importlib.util.spec_from_file_location(f"{function}_app", REPO_ROOT / "functions" / function / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synthetic_events(
    count: int,
    *,
    seed: int = 11,
    now: datetime,
    days: int = 1,
    users: int = 50_000,
    items: int = 20_000,
    stores: int = 20,
) -> list[dict[str, Any]]:
    """A realistic mix of client events from the last `days` days: impressions and clicks dominate,
    purchases carry 1–12 lines. Users user-0…, items item-0… and stores store-0… drawn uniformly."""
    rng = random.Random(seed)
    events = []
    for _ in range(count):
        kind = rng.choices(
            ("impression", "click", "add_to_cart", "remove_from_cart", "purchase", "hide"), (40, 20, 15, 5, 15, 5)
        )[0]
        event: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "type": kind,
            "user_id": f"user-{rng.randrange(users)}",
            "store_id": f"store-{rng.randrange(stores)}",
            "occurred_at": (now - timedelta(seconds=rng.randrange(86_400 * days))).isoformat(),
        }
        if kind == "purchase":
            lines = rng.sample(range(items), rng.randint(1, 12))
            event["order_id"] = f"order-{rng.getrandbits(48)}"
            event["items"] = [
                {"item_id": f"item-{item}", "quantity": rng.randint(1, 4), "unit_price": rng.randint(49, 2999) / 100}
                for item in lines
            ]
        else:
            event["item_id"] = f"item-{rng.randrange(items)}"
        if kind in ("add_to_cart", "remove_from_cart"):
            event["quantity"] = rng.randint(1, 3)
        if kind in ("impression", "click"):
            event |= {"feed_id": uuid.UUID(int=rng.getrandbits(128)).hex, "section": "trending",
                      "position": rng.randrange(40)}  # fmt: skip
        events.append(event)
    return events


def _copy_row(event: dict[str, Any]) -> tuple:
    lines = event.get("items")
    return (
        event["event_id"], event["occurred_at"], event["type"], event["user_id"], event["store_id"],
        event.get("item_id"), event.get("quantity"), event.get("order_id"),
        [line["item_id"] for line in lines] if lines else None,
        [line["quantity"] for line in lines] if lines else None,
        [line["unit_price"] for line in lines] if lines else None,
        event.get("feed_id"), event.get("section"), event.get("position"),
    )  # fmt: skip


def _copy_field(value: Any) -> str:
    """A value in COPY's text format; a list as an array of quoted elements."""
    if value is None:
        return "\\N"
    if isinstance(value, list):
        value = "{" + ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value) + "}"
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_text(batch: list[dict[str, Any]]) -> bytes:
    """The rows of `batch` as a COPY … FROM STDIN payload in text format."""
    return "".join("\t".join(map(_copy_field, _copy_row(event))) + "\n" for event in batch).encode()


def _api_request(batch: list[dict[str, Any]]) -> dict[str, Any]:
    body = json.dumps({"events": batch})
    return {
        "resource": "/v1/events", "path": "/v1/events", "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"}, "multiValueHeaders": {"Content-Type": ["application/json"]},
        "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
        "stageVariables": None, "body": body, "isBase64Encoded": False,
        "requestContext": {"resourcePath": "/v1/events", "httpMethod": "POST", "stage": "bench",
                           "requestId": str(uuid.uuid4()), "path": "/bench/v1/events",
                           # Many users' events in one batch: a producer service in the admin group sends them.
                           "authorizer": {"claims": {"sub": "bench-producer", "cognito:groups": "admin"}}},
    }  # fmt: skip


class _Context:
    function_name = "ingest_events"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ingest_events"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def bench_ingest(events: int, batch_size: int, workers: int) -> dict[str, Any]:
    """Time `events` events through the real ingest handler in batches of `batch_size`, sent by `workers`
    processes at once (like as many warm Lambda containers), then a raw COPY of the same rows into the same
    table by as many processes, one COPY per batch — and once more as a single COPY stream."""
    # Batches the handler would answer 413 are refused before any work.
    limits = ingest_settings()
    if batch_size > limits.max_events_per_batch:
        raise InvalidArgument(f"--batch-size {batch_size}: a batch holds at most {limits.max_events_per_batch} "
                              "events (INGEST_MAX_EVENTS_PER_BATCH)")  # fmt: skip
    now = datetime.now(UTC)
    rows = synthetic_events(events, now=now)
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    requests = [_api_request(batch) for batch in batches]  # serialized before the clock starts
    largest = max(len(r["body"].encode()) for r in requests)
    if largest > limits.max_body_bytes:
        raise InvalidArgument(f"--batch-size {batch_size}: a batch of {largest} bytes is past INGEST_MAX_BODY_BYTES "
                              f"({limits.max_body_bytes})")  # fmt: skip
    with scratch_database("feed_bench_ingest") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            _load_catalog(conn)  # events are checked against the catalog, as in production
        warmup = synthetic_events(batch_size, seed=99, now=now)
        handler_s = _in_parallel(_ingest_worker, url, [requests[w::workers] for w in range(workers)], warmup)
        with psycopg.connect(url, autocommit=True) as conn:
            stored = conn.execute("SELECT count(*) FROM events").fetchone()[0] - workers * len(warmup)
            conn.execute("TRUNCATE events, event_ids")
        # Formatted before the clock starts, as the requests are serialized before it: the timed part is the
        # database's, not the client's adaptation of ~7,000 values per batch (10 ms per batch on this machine).
        copy_batches = [_copy_text(batch) for batch in batches]
        copy_s = _in_parallel(_copy_worker, url, [copy_batches[w::workers] for w in range(workers)], None)
        with psycopg.connect(url, autocommit=True) as conn:
            copied = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            conn.execute("TRUNCATE events, event_ids")
        stream_s = _in_parallel(_copy_worker, url, [[b"".join(copy_batches)]], None)
    if stored != events or copied != events:
        raise RuntimeError(f"expected {events} rows, the handler stored {stored} and COPY {copied}")
    return {
        "events": events,
        "batch_size": batch_size,
        "workers": workers,
        "events_per_s": round(events / handler_s),
        "copy_events_per_s": round(events / copy_s),
        "copy_stream_events_per_s": round(events / stream_s),
        "ratio": round(copy_s / handler_s, 3),  # = events_per_s / copy_events_per_s
    }


def _in_parallel(worker, url: str, shares: list[list], warmup: Any) -> float:
    """Run `worker(url, share, warmup, barrier)` in one process per share; seconds from the common start
    until the last finishes."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(shares) + 1)
    processes = [context.Process(target=worker, args=(url, share, warmup, barrier)) for share in shares]
    for process in processes:
        process.start()
    barrier.wait()  # every worker is connected and warm
    started = time.perf_counter()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - started
    if any(process.exitcode != 0 for process in processes):
        raise RuntimeError("a benchmark worker failed")
    return elapsed


def _ingest_worker(url: str, requests: list[dict], warmup: list[dict], barrier) -> None:
    _quiet()
    point_feedcore_at(url)
    handler = load_handler_module("ingest_events").lambda_handler
    context = _Context()
    _expect_ok(handler(_api_request(_fresh_ids(warmup)), context), len(warmup))
    barrier.wait()
    for request in requests:
        _expect_ok(handler(request, context), None)


def _fresh_ids(events: list[dict]) -> list[dict]:
    return [event | {"event_id": str(uuid.uuid4())} for event in events]


def _copy_worker(url: str, payloads: list[bytes], _: Any, barrier) -> None:
    columns = ", ".join(EVENT_COLUMNS)
    with psycopg.connect(url, autocommit=True) as conn:
        barrier.wait()
        for payload in payloads:
            with conn.transaction(), conn.cursor().copy(f"COPY events ({columns}) FROM STDIN") as copy:
                copy.write(payload)


def bench_recompute(events: int, new_events: int, users: int) -> dict[str, Any]:
    """Time a full rebuild over `events` events of history from `users` users, then an incremental run after
    `new_events` more (the same ones for any history: a fixed count shows how the run's time depends on the history
    alone; more users, how it depends on how many the history knows)."""
    from feedcore.scoring.service import RecomputeRequest, recompute_scores

    now = datetime.now(UTC)
    history = synthetic_events(events, now=now, days=90, users=users)
    new = synthetic_events(new_events, seed=12, now=now, days=1, users=users)
    with scratch_database("feed_bench_recompute") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            _load_catalog(conn)
            _copy_events(conn, history, now, received_when_occurred=True)
        started = time.perf_counter()
        full = recompute_scores(RecomputeRequest(mode="full"), now=now)
        full_s = time.perf_counter() - started
        with psycopg.connect(url, autocommit=True) as conn:
            _copy_events(conn, new, now)
        started = time.perf_counter()
        incremental = recompute_scores(RecomputeRequest(mode="incremental"), now=now)
        incremental_s = time.perf_counter() - started
        with psycopg.connect(url) as conn:
            (known_users,) = conn.execute("SELECT count(*) FROM users").fetchone()
    if full.events_scored == 0 or incremental.events_scored == 0 or incremental.status != "completed":
        raise RuntimeError(f"unexpected runs: {full} / {incremental}")
    return {
        "events": events,
        "users": users,
        "known_users": known_users,  # those with a scored event, after the incremental run
        "new_events": len(new),
        "full_s": round(full_s, 2),
        "incremental_s": round(incremental_s, 3),
        "incremental_ratio": round(incremental_s / full_s, 4),
        "events_scored": {"full": full.events_scored, "incremental": incremental.events_scored},
    }


def default_new_events(events: int) -> int:
    """The recompute bench's new events unless given: 1 % of the history, at least one."""
    return max(events // 100, 1)


def bench_fanout(events: int, backlog: int, shards: int) -> dict[str, Any]:
    """Time the same backlog of `backlog` events, after a rebuilt history of `events`, scored from the same
    watermark in one invocation and fanned out to `shards` user shards (in one chunk, the consumers threads of
    this process, moto's SQS in-process); each in a database of its own."""
    from feedcore.scoring.service import RecomputeRequest, recompute_scores

    now = datetime.now(UTC)
    history = synthetic_events(events, now=now, days=90)
    new = synthetic_events(backlog, seed=12, now=now, days=1)
    runs = {}
    for shards_run in (0, shards):
        with scratch_database("feed_bench_fanout") as url:
            with psycopg.connect(url, autocommit=True) as conn:
                _load_catalog(conn)
                _copy_events(conn, history, now, received_when_occurred=True)
            recompute_scores(RecomputeRequest(mode="full"), now=now)
            with psycopg.connect(url, autocommit=True) as conn:
                _copy_events(conn, new, now)
                conn.execute("VACUUM ANALYZE")
            with _shard_consumers(shards_run, chunk_events=backlog):
                started = time.perf_counter()
                result = recompute_scores(RecomputeRequest(), now=now)
                runs[shards_run] = (time.perf_counter() - started, result)
    (single_s, single), (fanout_s, fanned_out) = runs[0], runs[shards]
    if single.events_scored != fanned_out.events_scored or fanned_out.shard_messages_sent != shards:
        raise RuntimeError(f"unexpected runs: {single} / {fanned_out}")
    return {
        "events": events,
        "backlog": backlog,
        "shards": shards,
        "events_scored": single.events_scored,
        "single_s": round(single_s, 3),
        "fanout_s": round(fanout_s, 3),
        "speedup": round(single_s / fanout_s, 2),
    }


@contextmanager
def _shard_consumers(shards: int, chunk_events: int) -> Iterator[None]:
    """With `shards` > 0: the recompute fans a chunk of up to `chunk_events` events out to `shards` shards on
    moto's SQS, consumed by as many threads as Lambda's event source mapping would; else nothing fans out."""
    if not shards:
        yield
        return
    import boto3
    from moto import mock_aws

    from feedcore import settings
    from feedcore.db import shard_queue
    from feedlocal.aws_local import REGION, create_queue_with_dead_letters, deliver_queue_batch

    consumer = load_handler_module("recompute_scores").shard_handler
    saved = dict(os.environ)
    stop = threading.Event()
    try:
        with mock_aws():
            sqs = boto3.client("sqs", region_name=REGION)
            queue_url, _ = create_queue_with_dead_letters(sqs, "feed-score-shards", max_receives=5)
            os.environ.update(AWS_DEFAULT_REGION=REGION, SCORING_FANOUT_QUEUE_URL=queue_url,
                              SCORING_FANOUT_SHARDS=str(shards), SCORING_FANOUT_MIN_EVENTS="1",
                              SCORING_FANOUT_POLL_INTERVAL_S="0.1", SCORING_CHUNK_EVENTS=str(chunk_events))  # fmt: skip
            settings.fanout_settings.cache_clear()
            settings.scoring_settings.cache_clear()
            shard_queue._sqs.cache_clear()

            def consume() -> None:
                while not stop.is_set():
                    if not deliver_queue_batch(sqs, queue_url, consumer, function_name="recompute_shards")[0]:
                        stop.wait(0.05)

            threads = [threading.Thread(target=consume) for _ in range(shards)]
            for thread in threads:
                thread.start()
            try:
                yield
            finally:
                stop.set()
                for thread in threads:
                    thread.join()
    finally:  # after moto has put back the variables it set
        os.environ.clear()
        os.environ.update(saved)
        settings.fanout_settings.cache_clear()
        settings.scoring_settings.cache_clear()
        shard_queue._sqs.cache_clear()


def _load_catalog(conn: psycopg.Connection, items: int = 20_000, stores: int = 20) -> None:
    """The items and stores the synthetic events name (20,000 and 20 by default), every item sold everywhere;
    140 aisles in 20 departments, 500 brands, one item in 60 added to the catalog within the last month.

    Generated in the database rather than through feedcore.db.catalog's upserts: those cannot backdate
    created_at (the new arrivals), and took 31-34 s for this catalog (400,000 availability rows) against 6-9 s."""
    conn.execute(
        """
        INSERT INTO items (item_id, name, department, aisle, brand, price, created_at)
        SELECT 'item-' || n, 'Item ' || n, 'department ' || n %% 20, 'aisle ' || n %% 140, 'brand ' || n %% 500,
               1 + n %% 900 / 100.0, now() - (n %% 1800) * interval '1 day'
        FROM generate_series(0, %(items)s - 1) AS n
        """,
        {"items": items},
    )
    conn.execute(
        "INSERT INTO stores (store_id, name) SELECT 'store-' || n, 'Store ' || n FROM generate_series(0, %s - 1) AS n",
        (stores,),
    )
    conn.execute(
        "INSERT INTO store_availability (store_id, item_id) SELECT s.store_id, i.item_id FROM stores s, items i"
    )


def _copy_events(
    conn: psycopg.Connection, events: list[dict[str, Any]], now: datetime, *, received_when_occurred: bool = False
) -> None:
    """Load events as ingestion stores them (event_ids and events), by COPY: this is setup, not measured.

    With `received_when_occurred`, each event is stamped as received when it occurred and the events are stored
    in that order, as a history built up over time is (ingestion appends), and their block ranges are summarized
    in the `received_at` BRIN indexes, as autovacuum and the daily retention would have done over that time
    (migrations 0122, 0126): one COPY leaves them unsummarized, and a run then reads every block of every month.
    Otherwise each event is stamped as received now.
    """
    from feedcore.db.events import ensure_event_partitions, event_partitions, month_of, summarize_ranges

    if received_when_occurred:  # ISO texts of one zone: their order is the instants'
        events = sorted(events, key=lambda event: event["occurred_at"])
    months = {month_of(datetime.fromisoformat(event["occurred_at"])) for event in events} | {month_of(now)}
    ensure_event_partitions(conn, months)
    with conn.transaction():
        with conn.cursor().copy("COPY event_ids (event_id, occurred_at) FROM STDIN") as copy:
            for event in events:
                copy.write_row((event["event_id"], event["occurred_at"]))
        columns = ", ".join(EVENT_COLUMNS + (("received_at",) if received_when_occurred else ()))
        with conn.cursor().copy(f"COPY events ({columns}) FROM STDIN") as copy:
            for event in progress(events, len(events), "loading the history", "events"):
                row = _copy_row(event)
                copy.write_row(row + (event["occurred_at"],) if received_when_occurred else row)
    if received_when_occurred:
        for partition in event_partitions(conn):
            summarize_ranges(conn, partition)
    conn.execute("ANALYZE events")


def _expect_ok(response: dict[str, Any], count: int | None) -> None:
    body = json.loads(response["body"])
    if response["statusCode"] != 200 or body["rejected"] or (count is not None and body["accepted"] != count):
        raise RuntimeError(f"ingest answered {response['statusCode']}: {str(body)[:500]}")


def print_result(result: dict[str, Any]) -> None:
    print(json.dumps(result), file=sys.stdout, flush=True)


def bench_feed(
    users: int, items: int, stores: int, events: int, requests: int, keep_database: str | None = None
) -> dict[str, Any]:
    """Seed a history, recompute, then time first feed pages through the real handler (warm) for random users
    in a fresh process, next to SELECT 1 round trips to the same database.

    With `keep_database`, the seeded database keeps that name after the run, and a later run with the same
    name and sizes reuses it instead of seeding again (only pending migrations are applied)."""
    sizes = f"feed bench: users={users} items={items} stores={stores} events={events}"
    with ExitStack() as stack:
        if keep_database:
            url, seeded = stack.enter_context(kept_database(keep_database, sizes))
        else:
            url, seeded = stack.enter_context(scratch_database("feed_bench_feed")), False
        if not seeded:
            _seed_feed_history(url, users, items, stores, events)
        print(f"calling the feed handler {requests} times", file=sys.stderr, flush=True)
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: memory is the handler's own
        with context.Pool(1) as pool:
            figures = pool.apply(_feed_worker, (url, requests, users, stores))
    return {"users": users, "items": items, "stores": stores, "events": events, "reused_database": seeded, **figures}


def _seed_feed_history(url: str, users: int, items: int, stores: int, events: int) -> None:
    from feedcore.scoring.service import RecomputeRequest, recompute_scores

    now = datetime.now(UTC)
    history = synthetic_events(events, now=now, days=90, users=users, items=items, stores=stores)
    with psycopg.connect(url, autocommit=True) as conn:
        _load_catalog(conn, items=items, stores=stores)
        _copy_events(conn, history, now, received_when_occurred=True)
    del history
    print(f"seeded {events} events; recomputing", file=sys.stderr, flush=True)
    recompute_scores(RecomputeRequest(mode="full"), now=now)


def _feed_worker(url: str, requests: int, users: int, stores: int) -> dict[str, Any]:
    import statistics

    from feedcore.feed import shelves
    from feedcore.feed.service import forget_store_shelves

    shelf_clock = [0.0]  # added to the shelf cache's clock: moving it on expires every shelf
    shelves.monotonic = lambda: time.monotonic() + shelf_clock[0]
    _quiet()
    point_feedcore_at(url)
    statements = _count_statements()
    handler = load_handler_module("assemble_feed").lambda_handler
    rng = random.Random(3)
    context = _Context()

    def call() -> float:
        user, store = f"user-{rng.randrange(users)}", f"store-{rng.randrange(stores)}"
        started = time.perf_counter()
        response = handler(_feed_request(user, store), context)
        elapsed = time.perf_counter() - started
        if response["statusCode"] != 200 or json.loads(response["body"])["degraded"]:
            raise RuntimeError(f"feed answered {response['statusCode']}: {response['body'][:300]}")
        return elapsed

    for _ in range(min(200, requests)):  # warm: imports, connection, caches
        call()
    statements[0] = 0
    latencies = sorted(call() for _ in range(requests))
    queries = statements[0] / requests
    shelf_checks = []  # a request whose store's shelf is past its TTL: it checks the pack (unchanged here)
    for _ in range(min(20, requests)):
        shelf_clock[0] += 3600
        shelf_checks.append(call())
    shelf_misses = []  # a request of a new container: it reads the catalog and its store's packed shelf
    for _ in range(min(20, requests)):
        forget_store_shelves()
        shelf_misses.append(call())
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        select1 = []
        for _ in range(requests):
            started = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            select1.append(time.perf_counter() - started)
    p50, select1_p50 = statistics.median(latencies), statistics.median(select1)
    return {
        "requests": requests,
        "p50_ms": round(p50 * 1000, 2),
        "p95_ms": round(latencies[int(0.95 * len(latencies))] * 1000, 2),
        "p99_ms": round(latencies[int(0.99 * len(latencies))] * 1000, 2),
        "select1_p50_ms": round(select1_p50 * 1000, 3),
        "p50_over_select1": round(p50 / select1_p50, 1),
        "queries_per_feed": round(queries, 2),
        "shelf_check_p50_ms": round(statistics.median(shelf_checks) * 1000, 2),
        "shelf_miss_p50_ms": round(statistics.median(shelf_misses) * 1000, 2),
        "rss_mb": _peak_rss_mb(),
    }


def _peak_rss_mb() -> float:
    """This process's peak resident memory since it started its program (getrusage's maximum would
    include the parent's memory from before the exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status")


def _quiet() -> None:
    """Lambda ships logs and metrics from stdout; in a benchmark they would only flood the terminal."""
    devnull = open(os.devnull, "w")  # noqa: SIM115
    logger.registered_handler.setStream(devnull)
    sys.stdout = devnull


def _count_statements() -> list[int]:
    """Count every statement psycopg sends from now on, awaited or sent without waiting (in element 0 of the
    returned list)."""
    from feedcore.db import connection

    counter = [0]
    execute, send_without_waiting = psycopg.Cursor.execute, connection.send_without_waiting

    def counting_execute(self, *args, **kwargs):
        counter[0] += 1
        return execute(self, *args, **kwargs)

    def counting_send_without_waiting(*args, **kwargs):
        counter[0] += 1
        return send_without_waiting(*args, **kwargs)

    psycopg.Cursor.execute = counting_execute
    connection.send_without_waiting = counting_send_without_waiting
    return counter


def _feed_request(user_id: str, store_id: str) -> dict[str, Any]:
    return {
        "resource": "/v1/users/{user_id}/feed", "path": f"/v1/users/{user_id}/feed", "httpMethod": "GET",
        "headers": {"Accept": "application/json"}, "multiValueHeaders": {"Accept": ["application/json"]},
        "queryStringParameters": {"store_id": store_id}, "multiValueQueryStringParameters": {"store_id": [store_id]},
        "pathParameters": {"user_id": user_id}, "stageVariables": None, "body": None, "isBase64Encoded": False,
        "requestContext": {"resourcePath": "/v1/users/{user_id}/feed", "httpMethod": "GET", "stage": "bench",
                           "requestId": str(uuid.uuid4()), "path": f"/bench/v1/users/{user_id}/feed",
                           "authorizer": {"claims": {"sub": user_id}}},  # the user asks for their own feed
    }  # fmt: skip


# A fresh interpreter imports the handler's file as Lambda's runtime does (nothing of feedlocal, which the
# function does not ship) and answers one request; it writes its own time on a marked line of stdout.
_COLDSTART_SCRIPT = """
import time
started = time.perf_counter()
import importlib.util, json, sys, types
spec = importlib.util.spec_from_file_location("assemble_feed_app", sys.argv[1])
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
response = app.lambda_handler(json.loads(sys.argv[2]), types.SimpleNamespace(**json.loads(sys.argv[3])))
elapsed = time.perf_counter() - started
assert response["statusCode"] == 200 and not json.loads(response["body"])["degraded"], response
print(json.dumps({"init_and_first_response_s": elapsed}), flush=True)
"""

# The attributes of Lambda's context object that the handler reads.
_COLDSTART_CONTEXT = {
    "function_name": "assemble_feed", "function_version": "$LATEST", "memory_limit_in_mb": 512,
    "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:assemble_feed",
    "aws_request_id": "bench-coldstart",
}  # fmt: skip


def _first_response_of_a_fresh_interpreter(environment: dict[str, str]) -> tuple[float, float]:
    """Seconds from the program's first line to the first response (as measured inside), and from process
    start to that response (adds the interpreter's own start). The interpreter's exit, which a Lambda
    container never makes between requests, is waited for but not counted."""
    import subprocess

    arguments = [
        str(REPO_ROOT / "functions" / "assemble_feed" / "app.py"),
        json.dumps(_feed_request("user-1", "store-1")),
        json.dumps(_COLDSTART_CONTEXT),
    ]
    started = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, "-c", _COLDSTART_SCRIPT, *arguments], env=environment, stdout=subprocess.PIPE, text=True
    ) as process:
        for line in process.stdout:
            if line.startswith('{"init_and_first_response_s"'):
                with_interpreter_start = time.perf_counter() - started
                inner = json.loads(line)["init_and_first_response_s"]
                break
        else:
            raise RuntimeError(f"the cold start process gave no response (exit code {process.wait()})")
        process.stdout.read()  # its log lines; the pipe must not fill up
    if process.returncode:
        raise RuntimeError(f"the cold start process failed with exit code {process.returncode}")
    return inner, with_interpreter_start


def bench_coldstart(runs: int) -> dict[str, Any]:
    """Start fresh interpreters that import the assemble_feed handler and answer one feed request: the time
    from the first line of the program (imports, settings, connection, first response), and from process
    start (adds the interpreter's own start). One untimed start first writes the .pyc caches, which `make
    build` ships in the layer and functions."""
    import statistics

    from feedcore.scoring.service import RecomputeRequest, recompute_scores

    now = datetime.now(UTC)
    with scratch_database("feed_bench_coldstart") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            _load_catalog(conn, items=2000, stores=5)
            _copy_events(conn, synthetic_events(20_000, now=now, users=1000, items=2000, stores=5), now)
        recompute_scores(RecomputeRequest(mode="full"), now=now)
        # Without PYTHONDONTWRITEBYTECODE (if the caller sets it): the untimed start writes the .pyc caches.
        environment = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
        # PYDANTIC_DISABLE_PLUGINS as template.yaml sets it for every function.
        environment |= {
            "DATABASE_URL": url,
            "POWERTOOLS_SERVICE_NAME": "assemble_feed",
            "PYDANTIC_DISABLE_PLUGINS": "__all__",
        }
        _first_response_of_a_fresh_interpreter(environment)
        inner, outer = zip(*(_first_response_of_a_fresh_interpreter(environment) for _ in range(runs)), strict=True)
    return {
        "runs": runs,
        "coldstart_ms": round(statistics.median(inner) * 1000, 1),
        "with_interpreter_start_ms": round(statistics.median(outer) * 1000, 1),
    }
