"""The compiled fast path for event bodies accepts only what EventBatch accepts, read into the same events."""

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, get_type_hints

import msgspec
import pytest
from pydantic import ValidationError

from feedcore.api.event_fast_path import FAST_EVENT_STRUCTS, usual_event_batch
from feedcore.api.event_models import EVENT_MODELS, EventBatch, UnmatchedEvent
from feedlocal.bench import synthetic_events
from tests.factories import BAD_INPUT, BAD_INPUT_IDS, event, purchase


def pydantic_events(body: str) -> list | None:
    """EventBatch's events when it accepts every event of `body`, else None."""
    try:
        events = EventBatch.model_validate_json(body).events
    except ValidationError:
        return None
    return None if any(isinstance(e, UnmatchedEvent) for e in events) else events


def assert_read_as_pydantic_reads(body: str) -> bool:
    """The fast path's answer is None or EventBatch's events (same values, same offsets); whether it read it."""
    fast = usual_event_batch(body)
    if fast is None:
        return False
    expected = pydantic_events(body)
    assert expected is not None, f"the fast path accepts what EventBatch rejects: {body[:300]}"
    assert fast.events == expected
    assert [e["occurred_at"].utcoffset() for e in fast.events] == [e["occurred_at"].utcoffset() for e in expected]
    return True


def test_structs_mirror_the_event_models():
    for model, struct in zip(EVENT_MODELS, FAST_EVENT_STRUCTS, strict=True):
        assert struct.__struct_config__.tag == get_type_hints(model)["type"].__args__[0]
        assert {field.name for field in msgspec.structs.fields(struct)} | {"type"} == set(get_type_hints(model))


@pytest.mark.parametrize(("raw_body", "status", "field"), BAD_INPUT, ids=BAD_INPUT_IDS)
def test_the_bad_input_table_is_left_to_pydantic_or_read_as_it_reads(raw_body, status, field):
    read = assert_read_as_pydantic_reads(raw_body)
    # What pydantic rejects never passes; what it accepts (a batch too large, an instant outside the window, a
    # repeated line) is the service's to reject, with the same reasons on either path.
    assert not read or field in ("body", "events[0].items", "events[0].occurred_at")


def test_a_generated_sample_is_read_by_the_fast_path_as_pydantic_reads_it():
    events = synthetic_events(2_000, now=datetime.now(UTC), seed=5)
    for start in range(0, len(events), 500):
        assert assert_read_as_pydantic_reads(json.dumps({"events": events[start : start + 500]}))


def base_events() -> list[dict[str, Any]]:
    at = datetime(2026, 11, 26, 10, tzinfo=UTC)
    return [
        event("click", item_id="milk", at=at) | {"feed_id": "f1", "section": "trending", "position": 3},
        event("impression", item_id="milk", at=at, feed_id="f1", section="trending", position=0),
        event("add_to_cart", item_id="milk", at=at, quantity=2),
        event("remove_from_cart", item_id="milk", at=at),
        event("hide", item_id="eggs", at=at),
        purchase(items=("milk", "eggs")) | {"occurred_at": at.isoformat()},
    ]


EVENT_ID = "0f8c3e0a-5c1b-4b8e-9a2f-1d2e3f4a5b6c"
EDGE_VALUES: dict[str, list[Any]] = {
    "event_id": [EVENT_ID, EVENT_ID.upper(), EVENT_ID.replace("-", ""), "{" + EVENT_ID + "}", "urn:uuid:" + EVENT_ID,
                 EVENT_ID + "\n", EVENT_ID[:-1], "", None, 7],
    "occurred_at": ["2026-11-26T10:00:00Z", "2026-11-26T10:00:00.5+05:30", "2026-11-26T10:00:00.123456-03:00",
                    "2026-11-26T10:00:00.1234567Z", "2026-11-26 10:00:00Z", "2026-11-26t10:00:00z",
                    "2026-11-26T10:00Z", "2026-11-26T10:00:00", "2026-11-26T10:00:60Z", "2026-11-26T24:00:00Z",
                    "2026-02-30T10:00:00Z", "2026-11-26T10:00:00+23:59", "2026-11-26T10:00:00+24:00",
                    "2026-11-26T10:00:00-00:00", "2026-11-26T10:00:00+0530", "\u0662026-11-26T10:00:00Z",
                    "2026-11-26T10:00:00Z\n", "0000-11-26T10:00:00Z", 1_764_151_200, None],
    "user_id": ["u-1", "U.1:x_y-z", "_u", "-u", "u" * 64, "u" * 65, "", "u\n", "u\t1", "u 1", "ü", "\u0661", None, 1],
    "item_id": ["milk", "NULL", "m,ilk", 'm"ilk', "m}ilk", "m\\ilk", "x" * 65, "", None, 42],
    "feed_id": ["f1", "_f", ".f", "f" * 64, "f" * 65, "", "f\n", None, 3],
    "section": ["trending", "_s", "", None, "s\x00"],
    "position": [0, 10_000, 10_001, -1, 2.0, True, "3", None],
    "quantity": [1, 999, 1000, 0, 2.0, True, "2", None],
    "unit_price": [0, 0.01, 2.99, 99_999.99, 100_000, 100_000.01, 0.015, 2.999, 0.010000000001, -0.01, "1.5", True,
                   None],
    "type": ["click", "Click", "teleport", None],
    "extra": ["colour"],
}  # fmt: skip


def mutations():
    """Each field of each event type set to each edge value (or removed), one at a time in a valid batch."""
    for index in range(len(base_events())):
        for field, values in EDGE_VALUES.items():
            for value in [*values, "<removed>"]:
                events = base_events()
                target = events[index]
                if field in ("unit_price", "quantity") and target["type"] == "purchase":
                    target = target["items"][0]
                elif field not in target and field not in ("extra", "feed_id", "section", "position", "quantity"):
                    continue
                if value == "<removed>":
                    target.pop(field, None)
                elif field == "extra":
                    target[value] = "red"
                else:
                    target[field] = value
                yield json.dumps({"events": events})


def test_every_edge_value_is_left_to_pydantic_or_read_as_it_reads():
    bodies = list(mutations())
    read = sum(assert_read_as_pydantic_reads(body) for body in bodies)
    # Both sides of the line are exercised: the canonical spellings are read here, the rest left to pydantic.
    assert 0 < read < len(bodies) - 100


def test_a_repeated_key_or_a_wrong_top_level_is_left_to_pydantic_or_read_as_it_reads():
    click = json.dumps(base_events()[0])
    bodies = [
        '{"events": [' + click[:-1] + ', "item_id": "eggs"}]}',
        '{"events": [' + click[:-1] + ', "item_id": 5}]}',
        '{"events": [' + click + '], "events": []}',
        '{"events": [' + click + '], "extra": 1}',
        '{"events": [' + click + "]} trailing",
        "[" + click + "]",
        '{"events": [' + click + ", null]}",
    ]
    read = [assert_read_as_pydantic_reads(body) for body in bodies]
    # The repeated item_id is read, the last one winning as it does in pydantic; the others are left to it.
    assert read == [True, False, False, False, False, False, False]


def test_random_bytes_in_texts_are_left_to_pydantic_or_read_as_it_reads():
    rng = random.Random(3)
    alphabet = 'aZ09_.:-+ \t\n\\"{},\x00é\u0663Tz'
    read = 0
    for _ in range(300):
        events = base_events()
        target = rng.choice(events)
        field = rng.choice(["user_id", "store_id", "event_id", "occurred_at"])
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        target[field] = rng.choice([value, value + str(uuid.uuid4()), str(target[field]) + value])
        read += assert_read_as_pydantic_reads(json.dumps({"events": events}))
    # Both sides of the line are exercised.
    assert 0 < read < 300


@pytest.mark.parametrize("field", ["event_id", "user_id", "store_id", "item_id", "feed_id", "section", "occurred_at"])
def test_a_text_holding_a_newline_is_left_to_pydantic(field: str) -> None:
    impression = event("impression", item_id="milk", feed_id="feed-1", section="trending", position=0)
    # Two values that each pass alone, joined by a newline (COPY's row separator).
    impression[field] = f"{impression[field]}\n{impression[field]}"

    assert usual_event_batch(json.dumps({"events": [impression]})) is None


def test_the_fast_path_reads_instants_with_their_offsets():
    events = base_events()
    events[0]["occurred_at"] = "2026-11-26T10:00:00.5+05:30"
    batch = usual_event_batch(json.dumps({"events": events}))
    assert batch.events[0]["occurred_at"] == datetime(2026, 11, 26, 4, 30, 0, 500_000, tzinfo=UTC)
    assert batch.events[0]["occurred_at"].utcoffset() == timedelta(hours=5, minutes=30)
