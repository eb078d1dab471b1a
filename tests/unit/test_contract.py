"""The event contract and the scheduler's input."""

import json
import uuid

import pytest
from pydantic import TypeAdapter, ValidationError

from feedcore.api.event_models import Event
from feedcore.api.models import FeedItem, Money
from feedcore.ingestion.retention import RetentionRequest
from feedcore.scoring.service import run_timeout_ms
from feedcore.scoring.trigger import scheduled_task_from_event
from tests.aws_events import eventbridge_scheduled_event


def click(event_id: str) -> dict:
    return {
        "event_id": event_id,
        "type": "click",
        "user_id": "u",
        "store_id": "s",
        "item_id": "i",
        "occurred_at": "2026-11-26T10:00:00Z",
    }


def test_unknown_fields_are_rejected():
    with pytest.raises(ValidationError) as error:
        TypeAdapter(Event).validate_python(click(str(uuid.uuid4())) | {"colour": "red"})
    assert error.value.errors()[0]["loc"][-1] == "colour"


def test_money_is_a_json_number_with_cents():
    fields = {"item_id": "a", "name": "A", "brand": None, "department": "d", "aisle": "a", "reason": "r"}
    fields["tracking"] = "f:s:0"
    item = FeedItem(price=3.10, **fields)
    assert item.model_dump(mode="json")["price"] == 3.1
    for not_an_amount in (3.105, "3.10", True):
        with pytest.raises(ValidationError):
            FeedItem(price=not_an_amount, **fields)


def test_scheduler_input_and_eventbridge_rule_event_give_the_same_request():
    assert scheduled_task_from_event({}).mode == "incremental"
    assert scheduled_task_from_event({"mode": "full"}).mode == "full"
    assert scheduled_task_from_event(eventbridge_scheduled_event()).mode == "incremental"
    assert scheduled_task_from_event(eventbridge_scheduled_event({"mode": "full"})).mode == "full"
    assert scheduled_task_from_event({"keep_days": 400}) == RetentionRequest(keep_days=400)
    assert scheduled_task_from_event(eventbridge_scheduled_event({"keep_days": 90})) == RetentionRequest(keep_days=90)


@pytest.mark.parametrize(
    "event",
    [{"mode": "nonsense"}, {"unexpected": 1}, eventbridge_scheduled_event({"mode": "nonsense"}), {"keep_days": 0},
     {"keep_days": 36_501}, {"mode": "full", "keep_days": 400}, 5, None, [], "full"],
)  # fmt: skip
def test_malformed_scheduler_input_is_rejected(event):
    with pytest.raises(ValidationError):
        scheduled_task_from_event(event)


def test_run_timeout_follows_the_invocations_remaining_time():
    assert run_timeout_ms(240_000, None) == 240_000
    assert run_timeout_ms(240_000, 60_000) == 60_000
    assert run_timeout_ms(240_000, 900_000) == 240_000
    assert run_timeout_ms(240_000, -5_000) == 1_000  # almost out of time: still a valid timeout


@pytest.mark.parametrize("amount", [0, 0.01, 2.99, 1234.5, 99_999.99, 100_000])
def test_money_of_two_decimals_is_accepted_as_sent(amount):
    assert TypeAdapter(Money).validate_json(json.dumps(amount)) == amount


@pytest.mark.parametrize("amount", [2.999, 0.010000000001, 1e-9, -0.01, 100_000.01])
def test_money_with_more_than_two_decimals_or_out_of_bounds_is_rejected(amount):
    with pytest.raises(ValidationError):
        TypeAdapter(Money).validate_json(json.dumps(amount))


@pytest.mark.parametrize("character", ["\\", "\t", "\n", "\r", '"', ",", "{", " "])
@pytest.mark.parametrize("field", ["user_id", "store_id", "item_id", "feed_id", "section"])
def test_event_texts_cannot_carry_what_copy_or_an_array_would_need_escaped(field, character):
    # Ingestion writes these values into COPY's text format, and item ids into array literals, unescaped.
    sent = click(str(uuid.uuid4())) | {"feed_id": "f1", "section": "trending", "position": 0}
    for value in (f"milk{character}", f"{character}milk", f"mi{character}lk"):
        with pytest.raises(ValidationError):
            TypeAdapter(Event).validate_python(sent | {field: value})


def test_purchase_line_item_ids_cannot_carry_what_an_array_would_need_escaped():
    purchase = click(str(uuid.uuid4())) | {"type": "purchase", "order_id": "o-1"}
    del purchase["item_id"]
    for item_id in ("a,b", 'a"b', "a}b", "a b", "a\\b", "a\nb"):
        with pytest.raises(ValidationError):
            TypeAdapter(Event).validate_python(purchase | {"items": [{"item_id": item_id, "unit_price": 1.5}]})
    assert TypeAdapter(Event).validate_python(purchase | {"items": [{"item_id": "NULL", "unit_price": 1.5}]})
