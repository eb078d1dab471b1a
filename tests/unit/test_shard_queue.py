"""The shard queue's SQS client: how many times a send is tried when SQS cannot be reached."""

from __future__ import annotations

from collections.abc import Iterator

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws

from feedcore.db import shard_queue


@pytest.fixture
def unreachable_sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The shard queue's client with every SendMessageBatch failing to connect (and no backoff between attempts);
    yields the URLs of the attempts."""
    attempts: list[str] = []

    def refuse(request: AWSPreparedRequest, **_: object) -> None:
        attempts.append(request.url)
        raise EndpointConnectionError(endpoint_url=request.url)

    monkeypatch.setattr(botocore.endpoint.time, "sleep", lambda _: None)
    with mock_aws():
        shard_queue._sqs.cache_clear()
        shard_queue._sqs().meta.events.register_first("before-send.sqs.SendMessageBatch", refuse)
        yield attempts
    shard_queue._sqs.cache_clear()


def test_a_send_to_an_unreachable_queue_is_tried_three_times_in_all(unreachable_sqs: list[str]) -> None:
    with pytest.raises(EndpointConnectionError):
        shard_queue.send_shard_messages("https://sqs.us-east-1.amazonaws.com/123456789012/shards", 1, [0, 1])

    # The standard retry mode's total_max_attempts, as the other clients (botocore's legacy `max_attempts: 3`
    # meant four attempts).
    assert len(unreachable_sqs) == 3
