"""Screening of an event batch: what is stored, what is rejected and why, what repeats."""

import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from feedcore.api.event_models import EventBatch
from feedcore.ingestion.service import TimeWindow, first_occurrences, screen_batch, screen_events
from feedcore.settings import IngestSettings

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SETTINGS = IngestSettings(late_event_horizon_days=30, future_tolerance_s=300)


def click(at: datetime = NOW, event_id: str | None = None, **fields) -> dict:
    return {"event_id": event_id or str(uuid.uuid4()), "type": "click", "user_id": "u", "store_id": "s",
            "item_id": "i", "occurred_at": at.isoformat(), **fields}  # fmt: skip


def purchase_event(*lines: tuple[str, float], at: str = NOW.isoformat()) -> dict:
    return {"event_id": str(uuid.uuid4()), "type": "purchase", "user_id": "u", "store_id": "s", "order_id": "o",
            "occurred_at": at, "items": [{"item_id": i, "unit_price": p} for i, p in lines]}  # fmt: skip


@pytest.mark.parametrize(
    ("occurred_at", "accepted"),
    [
        (NOW, True),
        (NOW + timedelta(seconds=300), True),
        (NOW + timedelta(seconds=301), False),
        (NOW - timedelta(days=30), True),
        (NOW - timedelta(days=30, seconds=1), False),
    ],
)
def test_time_window_takes_late_events_up_to_the_horizon_and_tolerates_fast_clocks(occurred_at, accepted):
    assert (TimeWindow.at(NOW, SETTINGS).error(occurred_at) is None) == accepted


def test_time_window_needs_the_partitions_of_every_month_it_spans():
    window = TimeWindow.at(datetime(2026, 3, 15, tzinfo=UTC), IngestSettings(late_event_horizon_days=60))
    assert window.months() == {date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)}


def test_screening_keeps_valid_events_with_their_index_and_explains_each_rejection():
    raw = [click(), {"type": "click"}, click(at=NOW + timedelta(hours=1)), 42, click()]
    screened = screen_events(EventBatch.model_validate({"events": raw}).events, TimeWindow.at(NOW, SETTINGS))

    assert [index for index, _ in screened.valid] == [0, 4]
    by_index = {r.index: r for r in screened.rejections}
    assert set(by_index) == {1, 2, 3}
    assert {e.field for e in by_index[1].errors} == {"events[1].event_id", "events[1].user_id", "events[1].store_id",
                                                      "events[1].occurred_at", "events[1].item_id"}  # fmt: skip
    assert by_index[2].event_id == raw[2]["event_id"]
    assert by_index[2].errors[0].type == "time_window"
    assert by_index[3].event_id is None


def test_first_occurrences_keeps_order_and_reports_repeats():
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    batch = EventBatch.model_validate({"events": [click(event_id=a), click(event_id=b), click(event_id=a)]})
    unique, repeats = first_occurrences(screen_batch(batch, TimeWindow.at(NOW, SETTINGS)).valid)

    assert [(index, event.event_id) for index, event in unique] == [(0, a), (1, b)]
    assert repeats == [2]


def test_screening_checks_purchase_lines_and_moves_each_instant_to_utc():
    raw = [
        purchase_event(("milk", 1.5), ("eggs", 0.010000000001)),  # within multiple_of's tolerance, yet not cents
        purchase_event(("milk", 1.5), ("milk", 2.0)),
        purchase_event(("milk", 1.5), at="2026-11-27T08:00:00+20:00"),  # an offset PostgreSQL cannot read
    ]
    screened = screen_events(EventBatch.model_validate({"events": raw}).events, TimeWindow.at(NOW, SETTINGS))

    by_index = {r.index: r.errors for r in screened.rejections}
    assert [(e.field, e.type) for e in by_index[0]] == [("events[0].items[1].unit_price", "decimal_places")]
    assert [(e.field, e.type) for e in by_index[1]] == [("events[1].items", "repeated_item")]
    assert "milk" in by_index[1][0].message
    [(index, valid)] = screened.valid
    assert index == 2
    assert valid["occurred_at"] == NOW and valid["occurred_at"].utcoffset() == timedelta(0)
    assert valid["items"][0]["quantity"] == 1


@pytest.mark.parametrize(
    ("flawed", "error_type"),
    [
        (purchase_event(("milk", 1.5), ("milk", 2.0)), "repeated_item"),
        (purchase_event(("milk", 1.5), ("eggs", 0.010000000001)), "decimal_places"),
        (click(at=NOW - timedelta(days=31)), "time_window"),
        (click(at=NOW + timedelta(minutes=6)), "time_window"),
        ({"type": "click"}, "missing"),
    ],
)
def test_one_flawed_event_among_valid_ones_is_the_only_rejection(flawed, error_type):
    raw = [click(), purchase_event(("milk", 1.5), ("eggs", 2.25)), flawed, click()]
    screened = screen_events(EventBatch.model_validate({"events": raw}).events, TimeWindow.at(NOW, SETTINGS))

    assert [index for index, _ in screened.valid] == [0, 1, 3]
    [rejection] = screened.rejections
    assert (rejection.index, rejection.errors[0].type) == (2, error_type)


def test_a_batch_of_valid_events_passes_whole_with_its_instants():
    india = timezone(timedelta(hours=5, minutes=30))
    raw = [click(at=NOW.astimezone(india)), purchase_event(("milk", 1.5), at=NOW.isoformat()), click()]
    screened = screen_events(EventBatch.model_validate({"events": raw}).events, TimeWindow.at(NOW, SETTINGS))

    assert screened.rejections == []
    assert [index for index, _ in screened.valid] == [0, 1, 2]
    assert {event["occurred_at"] for _, event in screened.valid} == {NOW}
