"""Error locations as clients read them."""

import pytest

from feedcore.api.field_errors import field_errors, field_path
from feedcore.api.models import FieldError


@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        (("body", "events", 0, "purchase", "items", 1, "quantity"), "events[0].items[1].quantity"),
        (("body", "events", 2, "click", "item_id"), "events[2].item_id"),
        (("query", "store_id"), "store_id"),
        (("body",), "body"),
        ((), "body"),
        (("body", "events"), "events"),
    ],
)
def test_field_path(loc, expected):
    assert field_path(loc) == expected


def test_unknown_event_type_names_the_type_field():
    errors = field_errors([{"loc": (), "msg": "Input tag 'x' ...", "type": "union_tag_invalid"}], prefix=("events", 3))
    assert errors == [FieldError(field="events[3].type", message="Input tag 'x' ...", type="union_tag_invalid")]


def test_malformed_json_names_the_body_not_an_offset():
    errors = field_errors([{"loc": ("body", 12), "msg": "JSON decode error", "type": "json_invalid"}])
    assert errors[0].field == "body"
