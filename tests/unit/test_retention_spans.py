"""Retention cuts what it deletes into spans (each its own short statement)."""

from datetime import UTC, datetime, timedelta

from feedcore.ingestion.retention import spans

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_spans_cover_the_range_once_in_order_with_a_shorter_last_span() -> None:
    assert list(spans(START, START + timedelta(hours=14), timedelta(hours=6))) == [
        (START, START + timedelta(hours=6)),
        (START + timedelta(hours=6), START + timedelta(hours=12)),
        (START + timedelta(hours=12), START + timedelta(hours=14)),
    ]


def test_an_empty_range_has_no_spans() -> None:
    assert list(spans(START, START, timedelta(hours=6))) == []
    assert list(spans(START, START - timedelta(hours=1), timedelta(hours=6))) == []
