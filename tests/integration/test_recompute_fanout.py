"""The recompute fanned out to user shards: the scheduled coordinator (EventBridge payloads) and the shard
consumer (SQS batches received from moto's SQS, with a redrive policy) against the real database."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import boto3
import psycopg
import pytest
from moto import mock_aws

from feedcore import settings
from feedcore.db import shard_queue
from feedcore.ingestion.privacy import delete_user
from feedcore.scoring.service import RecomputeRequest, recompute_scores
from feedlocal.aws_local import create_queue_with_dead_letters, deliver_queue_batch
from tests.aws_events import REGION, LambdaContext, eventbridge_scheduled_event
from tests.conftest import load_function, wait_until_blocked_by
from tests.factories import NOW, OTHER_STORE, create_catalog, event, purchase, record
from tests.integration.test_recompute_scores import assert_same_scores, decayed_scores

recompute = load_function("recompute_scores")
SHARDS = 3
MAX_RECEIVES = 3
# Tables a run writes: compared, and reset to replay the same backlog through the single-transaction path.
SCORED_TABLES = (
    "item_popularity, item_reorders, user_item_affinity, user_orders, item_baskets, item_pair_counts, item_pairs, users"
)


@dataclass
class ShardQueue:
    sqs: object
    url: str
    dlq_url: str

    def deliver(self) -> tuple[list[str], dict]:
        """What Lambda's event source mapping does once: the consumer gets a message (its BatchSize) as an SQS event."""
        return deliver_queue_batch(
            self.sqs, self.url, recompute.shard_handler, visibility_timeout_s=0, function_name="recompute_shards"
        )

    def deliver_all(self) -> tuple[list[str], list[dict]]:
        """Deliver until the queue is empty: the ids of the messages received and the failures reported."""
        received, failures = [], []
        while ids := (delivery := self.deliver())[0]:
            received += ids
            failures += delivery[1]["batchItemFailures"]
        return received, failures

    def take(self) -> list[dict]:
        """Receive every waiting message and delete it: the messages, as they were."""
        taken = []
        while messages := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            taken += messages
        return taken

    def put_back(self, messages: list[dict]) -> None:
        for message in messages:
            self.sqs.send_message(QueueUrl=self.url, MessageBody=message["Body"])


@pytest.fixture
def shard_queue_env(db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> Iterator[ShardQueue]:
    """The shard queue with its dead-letter queue, as template.yaml declares them; fan-out on for every chunk
    of more than one event, chunks of two events."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url, dlq_url = create_queue_with_dead_letters(sqs, "shards", max_receives=MAX_RECEIVES)
        shard_queue._sqs.cache_clear()  # the client is cached per container; make one inside moto
        for name, value in {"SCORING_FANOUT_QUEUE_URL": url, "SCORING_FANOUT_SHARDS": str(SHARDS),
                            "SCORING_FANOUT_MIN_EVENTS": "2", "SCORING_FANOUT_POLL_INTERVAL_S": "0.05",
                            "SCORING_CHUNK_EVENTS": "2"}.items():  # fmt: skip
            monkeypatch.setenv(name, value)
        settings.fanout_settings.cache_clear()
        settings.scoring_settings.cache_clear()
        yield ShardQueue(sqs, url, dlq_url)
    shard_queue._sqs.cache_clear()
    settings.fanout_settings.cache_clear()
    settings.scoring_settings.cache_clear()


def watermark_then_backlog(conn: psycopg.Connection) -> tuple:
    """A catalog, a first run (the watermark, returned), then events of eight users in eight transactions — a
    backlog of eight chunks of two or three events: purchases, carts, clicks and hides. user-0 is first seen
    at store-a in the first chunk, then buys more often at store-b in the second (its home store is the first
    chunk's); user-1 hides what it bought."""
    create_catalog(conn)
    recompute_scores(RecomputeRequest(), now=NOW)
    state = saved_state(conn)
    record(
        purchase("user-0", items=("milk", "eggs"), at=NOW - timedelta(days=3)), event("click", "user-0", item_id="eggs")
    )
    record(
        *(purchase("user-0", items=("bananas",), store_id=OTHER_STORE, at=NOW - timedelta(hours=h)) for h in range(3))
    )
    record(purchase("user-1", items=("milk", "coffee")), event("click", "user-2", item_id="eggs"))
    record(event("hide", "user-1", item_id="milk"), event("add_to_cart", "user-3", item_id="coffee"))
    for user in range(4, 8):
        record(
            purchase(f"user-{user}", items=("milk", "eggs", "coffee")), event("click", f"user-{user}", item_id="wine")
        )
    return state


def scored(conn: psycopg.Connection) -> dict[str, dict]:
    """Every score as of NOW, and the users' home stores."""
    return decayed_scores(conn, NOW) | {
        "users": {
            user: ([], home_store) for user, home_store in conn.execute("SELECT user_id, home_store_id FROM users")
        }
    }


def watermark(conn: psycopg.Connection) -> tuple:
    return conn.execute("SELECT scored_snapshot::text, target_snapshot::text, done_below_xid::text FROM score_state"
                        ).fetchone()  # fmt: skip


def coordinate() -> dict:
    """A run given no time to wait for shards: it sends what it must and returns."""
    return recompute_scores(RecomputeRequest(), now=NOW, time_budget_ms=0).model_dump()


def scheduled_run() -> dict:
    """The same through the handler, as EventBridge invokes it (the context leaves no time to wait)."""
    return recompute.lambda_handler(eventbridge_scheduled_event({"mode": "incremental"}), LambdaContext())


def open_shards(conn: psycopg.Connection) -> list[tuple[int, bool]]:
    return conn.execute("SELECT shard, done_at IS NOT NULL FROM score_shards ORDER BY shard").fetchall()


def single_transaction_result(conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch, state: tuple) -> dict:
    """The same backlog scored from the same watermark without fan-out."""
    conn.execute(f"TRUNCATE {SCORED_TABLES}, score_chunks, score_shards")
    for watermark in ("score_state", "pair_score_state"):  # the pair tables' own too (migration 0065)
        conn.execute(f"UPDATE {watermark} SET (epoch, scored_snapshot, target_snapshot, done_below_xid, scan_from)"
                     " = (%s, %s::pg_snapshot, %s::pg_snapshot, %s::xid8, %s)", state)  # fmt: skip
    monkeypatch.delenv("SCORING_FANOUT_QUEUE_URL")
    settings.fanout_settings.cache_clear()
    result = recompute_scores(RecomputeRequest(), now=NOW)
    assert result.status == "completed" and result.shard_messages_sent == 0
    return scored(conn)


def saved_state(conn: psycopg.Connection) -> tuple:
    return conn.execute(
        "SELECT epoch, scored_snapshot::text, target_snapshot::text, done_below_xid::text, scan_from FROM score_state"
    ).fetchone()


def test_a_fanned_out_backlog_scores_the_same_as_one_invocation(
    shard_queue_env: ShardQueue, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = watermark_then_backlog(db)
    consumer = Consumer(shard_queue_env)

    with consumer.running():  # the run waits for the shards of each chunk, then takes the next
        result = recompute_scores(RecomputeRequest(), now=NOW, time_budget_ms=60_000).model_dump()

    assert (result["status"], result["chunks"], result["events_scored"]) == ("completed", 8, 17)
    assert result["shard_messages_sent"] == 8 * SHARDS
    assert db.execute("SELECT count(*) FROM score_chunks").fetchone() == (0,)
    assert consumer.failures == []
    fanned_out = scored(db)
    assert fanned_out["users"]["user-0"] == ([], "store-a")  # the first chunk's store, as in one invocation
    assert fanned_out["affinity"]["user-1/milk"][1][-1] == "true"  # hidden
    assert_same_scores(fanned_out, single_transaction_result(db, monkeypatch, before))


def test_a_chunk_below_the_threshold_is_scored_in_one_transaction(
    shard_queue_env: ShardQueue, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCORING_FANOUT_MIN_EVENTS", "4")  # chunks hold two or three events
    settings.fanout_settings.cache_clear()
    watermark_then_backlog(db)

    result = coordinate()

    assert (result["status"], result["shard_messages_sent"]) == ("partial", 0)
    assert result["events_scored"] > 0
    assert shard_queue_env.take() == []


def test_the_watermark_waits_for_every_shard_and_item_signals_are_scored_once(
    shard_queue_env: ShardQueue, db: psycopg.Connection
) -> None:
    create_catalog(db)
    recompute_scores(RecomputeRequest(), now=NOW)
    record(purchase("user-1", items=("milk", "eggs")), purchase("user-2", items=("milk",)))
    before = watermark(db)

    dispatched = scheduled_run()
    messages = shard_queue_env.take()
    popularity = decayed_scores(db, NOW)["popularity"]
    shard_queue_env.put_back(messages[:-1])
    shard_queue_env.deliver_all()
    # Another scheduled run while one shard is still out: it neither moves the watermark nor scores again.
    waiting = scheduled_run()

    assert (dispatched["status"], dispatched["chunks"], dispatched["shard_messages_sent"]) == ("partial", 0, SHARDS)
    assert (waiting["status"], waiting["chunks"], waiting["shard_messages_sent"]) == ("partial", 0, 0)
    assert watermark(db) == before
    assert [done for _, done in open_shards(db)].count(False) == 1
    assert decayed_scores(db, NOW)["popularity"] == popularity
    assert db.execute("SELECT count(*) FROM score_runs").fetchone() == (1,)  # the first run's

    shard_queue_env.put_back(messages[-1:])
    shard_queue_env.deliver_all()
    passed = scheduled_run()

    assert (passed["status"], passed["chunks"], passed["events_scored"]) == ("completed", 1, 2)
    assert watermark(db) != before and watermark(db)[1:] == (None, None)
    assert open_shards(db) == []
    assert scheduled_run()["events_scored"] == 0


def test_a_redelivered_shard_message_changes_nothing(shard_queue_env: ShardQueue, db: psycopg.Connection) -> None:
    create_catalog(db)
    recompute_scores(RecomputeRequest(), now=NOW)
    record(purchase("user-1", items=("milk", "eggs")), event("click", "user-2", item_id="coffee"))
    coordinate()
    messages = shard_queue_env.take()
    shard_queue_env.put_back(messages)
    shard_queue_env.deliver_all()
    after_first = scored(db)
    shards = db.execute("SELECT shard, done_at, affinity_updates FROM score_shards ORDER BY shard").fetchall()

    shard_queue_env.put_back(messages)  # SQS delivers each message again
    received, failures = shard_queue_env.deliver_all()

    assert len(received) == SHARDS and failures == []
    assert scored(db) == after_first
    assert db.execute("SELECT shard, done_at, affinity_updates FROM score_shards ORDER BY shard").fetchall() == shards

    assert coordinate()["chunks"] == 1
    shard_queue_env.put_back(messages)  # and again once the chunk is finished
    assert shard_queue_env.deliver_all()[1] == []
    assert scored(db) == after_first


def test_a_lost_message_is_sent_again_and_the_run_completes(
    shard_queue_env: ShardQueue, db: psycopg.Connection
) -> None:
    create_catalog(db)
    recompute_scores(RecomputeRequest(), now=NOW)
    record(*(purchase(f"user-{n}", items=("milk", "eggs")) for n in range(2)))
    coordinate()
    messages = shard_queue_env.take()
    (lost,) = [m for m in messages if json.loads(m["Body"])["shard"] == 1]
    shard_queue_env.put_back([m for m in messages if m is not lost])
    shard_queue_env.deliver_all()

    too_soon = coordinate()
    db.execute("UPDATE score_shards SET sent_at = sent_at - interval '1 hour'")  # the resend interval passes
    resent = coordinate()
    again = shard_queue_env.take()
    shard_queue_env.put_back(again)
    shard_queue_env.deliver_all()
    finished = coordinate()

    assert too_soon["shard_messages_sent"] == 0
    assert resent["shard_messages_sent"] == 1
    assert [json.loads(m["Body"]) for m in again] == [json.loads(lost["Body"])]
    assert (finished["status"], finished["events_scored"]) == ("completed", 2)
    fanned_out = decayed_scores(db, NOW)
    recompute_scores(RecomputeRequest(mode="full"), now=NOW)
    assert_same_scores(fanned_out, decayed_scores(db, NOW))


class Consumer:
    """Lambda's event source mapping in a thread: delivers the shard queue's messages until stopped."""

    def __init__(self, queue: ShardQueue):
        self.queue = queue
        self.failures: list[dict] = []
        self._stop = threading.Event()

    def _loop(self) -> None:
        while not self._stop.is_set():
            received, answer = self.queue.deliver()
            self.failures += answer["batchItemFailures"]
            if not received:
                self._stop.wait(0.02)

    @contextmanager
    def running(self) -> Iterator[None]:
        thread = threading.Thread(target=self._loop)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()


def in_threads(*work: Callable[[], object]) -> list[object]:
    results: list[object] = [None] * len(work)

    def call(i: int) -> None:
        results[i] = work[i]()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_overlapping_coordinators_do_not_count_twice(
    shard_queue_env: ShardQueue, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = watermark_then_backlog(db)

    def run_for(seconds: int) -> Callable[[], object]:
        return lambda: recompute_scores(RecomputeRequest(), now=NOW, time_budget_ms=seconds * 1000)

    with Consumer(shard_queue_env).running():
        results = in_threads(run_for(30), run_for(30), run_for(30))

    assert sum(r.events_scored for r in results) == 17
    assert any(r.status == "completed" for r in results)
    assert_same_scores(scored(db), single_transaction_result(db, monkeypatch, before))


def test_erasure_waits_for_the_users_running_shard_and_the_shard_then_skips_the_user(
    shard_queue_env: ShardQueue, db: psycopg.Connection, database_url: str
) -> None:
    create_catalog(db)
    recompute_scores(RecomputeRequest(), now=NOW)
    record(purchase("user-1", items=("milk", "eggs")), purchase("user-2", items=("coffee",)))
    coordinate()
    (user_shard,) = db.execute("SELECT mod(hashtext('user-1') & 2147483647, %s)", (SHARDS,)).fetchone()
    erased = threading.Event()

    with psycopg.connect(database_url) as running_shard:  # a consumer in the middle of the user's shard
        running_shard.execute("SELECT FROM score_shards WHERE shard = %s FOR UPDATE", (user_shard,))
        eraser = threading.Thread(target=lambda: (delete_user("user-1"), erased.set()))
        eraser.start()
        wait_until_blocked_by(running_shard)  # the erasure waits for the shard's transaction
        assert not erased.is_set()
    eraser.join()
    assert erased.is_set()

    shard_queue_env.deliver_all()
    assert coordinate()["chunks"] == 1
    for table in ("user_item_affinity", "users", "events"):
        assert db.execute(f"SELECT count(*) FROM {table} WHERE user_id = 'user-1'").fetchone() == (0,), table
    assert db.execute("SELECT count(*) FROM user_item_affinity WHERE user_id = 'user-2'").fetchone() == (1,)


def test_a_full_rebuild_cancels_the_open_chunk_and_its_messages_then_change_nothing(
    shard_queue_env: ShardQueue, db: psycopg.Connection
) -> None:
    create_catalog(db)
    recompute_scores(RecomputeRequest(), now=NOW)
    record(purchase("user-1", items=("milk", "eggs")), purchase("user-2", items=("milk", "coffee")))
    coordinate()
    messages = shard_queue_env.take()
    shard_queue_env.put_back(messages[:1])
    shard_queue_env.deliver_all()

    rebuild = recompute.lambda_handler(eventbridge_scheduled_event({"mode": "full"}), LambdaContext())
    rebuilt = scored(db)
    shard_queue_env.put_back(messages)  # the cancelled chunk's messages come (back)
    received, failures = shard_queue_env.deliver_all()

    assert (rebuild["status"], rebuild["events_scored"]) == ("completed", 2)
    assert db.execute("SELECT count(*) FROM score_chunks").fetchone() == (0,)
    assert len(received) == SHARDS and failures == []
    assert scored(db) == rebuilt
    assert rebuilt["affinity"].keys() == {"user-1/milk", "user-1/eggs", "user-2/milk", "user-2/coffee"}
    assert coordinate()["events_scored"] == 0


def test_without_a_queue_the_run_scores_an_open_chunks_shards_itself(
    shard_queue_env: ShardQueue, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_catalog(db)
    recompute_scores(RecomputeRequest(), now=NOW)
    record(purchase("user-1", items=("milk", "eggs")), purchase("user-2", items=("milk", "coffee")))
    coordinate()
    shard_queue_env.take()  # fan-out is then turned off, its messages gone
    monkeypatch.delenv("SCORING_FANOUT_QUEUE_URL")
    settings.fanout_settings.cache_clear()

    result = recompute_scores(RecomputeRequest(), now=NOW)

    assert (result.status, result.events_scored, result.shard_messages_sent) == ("completed", 2, 0)
    assert db.execute("SELECT count(*) FROM score_chunks").fetchone() == (0,)
    fanned_out = decayed_scores(db, NOW)
    recompute_scores(RecomputeRequest(mode="full"), now=NOW)
    assert_same_scores(fanned_out, decayed_scores(db, NOW))


def test_a_malformed_shard_message_fails_alone_is_logged_and_reaches_the_dead_letter_queue(
    shard_queue_env: ShardQueue, db: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    bad = shard_queue_env.sqs.send_message(QueueUrl=shard_queue_env.url, MessageBody='{"chunk": 1}')["MessageId"]
    shard_queue_env.sqs.send_message(QueueUrl=shard_queue_env.url, MessageBody='{"chunk_id": 7, "shard": 0}')

    _, answer = shard_queue_env.deliver()
    for _ in range(MAX_RECEIVES):
        shard_queue_env.deliver()

    assert answer["batchItemFailures"] == [{"itemIdentifier": bad}]  # a shard of no open chunk: nothing to do
    dead = shard_queue_env.sqs.receive_message(QueueUrl=shard_queue_env.dlq_url).get("Messages", [])
    assert [m["Body"] for m in dead] == ['{"chunk": 1}']
    refusals = [r for r in caplog.records if r.getMessage().startswith("queue message refused")]
    assert len(refusals) == MAX_RECEIVES and {r.message_id for r in refusals} == {bad}  # once a delivery
    assert {(e["field"], e["type"]) for e in refusals[0].errors} == {
        ("chunk", "extra_forbidden"),
        ("chunk_id", "missing"),
        ("shard", "missing"),
    }
