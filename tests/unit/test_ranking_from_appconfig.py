"""The ranking config from AppConfig, read through Powertools' AppConfigStore (its AWS calls stubbed with
botocore's Stubber: moto does not implement the AppConfig data API)."""

from __future__ import annotations

import io
import json

import boto3
import pytest
from aws_lambda_powertools.utilities.feature_flags import AppConfigStore
from botocore.response import StreamingBody
from botocore.stub import Stubber

from feedcore import aws_calls, settings
from feedcore.feed import experiments
from feedcore.feed.config import default_ranking_config
from feedcore.feed.experiments import assign, ranking_config

TRENDING_FIRST = default_ranking_config().model_dump(mode="json") | {"experiment": None}
TRENDING_FIRST["base"]["section_order"] = ["trending", "buy_again", "popular"]


def answer(document: bytes) -> dict:
    return {
        "NextPollConfigurationToken": "next",
        "NextPollIntervalInSeconds": 60,
        "ContentType": "application/json",
        "Configuration": StreamingBody(io.BytesIO(document), len(document)),
        "VersionLabel": "1",
    }


@pytest.fixture
def appconfig(monkeypatch: pytest.MonkeyPatch):
    """AppConfig configured for the feed, its data API stubbed; yields the stubber to queue answers on."""
    client = boto3.client("appconfigdata", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_response("start_configuration_session", {"InitialConfigurationToken": "first"})
    store = AppConfigStore(environment="prod", application="feed", name="ranking", max_age=0, boto3_client=client)
    monkeypatch.setattr(aws_calls, "_appconfig_store", lambda *args: store)
    monkeypatch.setattr(experiments, "_parsed", {})
    monkeypatch.setenv("FEED_APPCONFIG_APPLICATION", "feed")
    settings.feed_settings.cache_clear()
    with stubber:
        yield stubber
        stubber.assert_no_pending_responses()  # every queued answer was asked for
    settings.feed_settings.cache_clear()


def test_the_config_in_appconfig_decides_the_feed(appconfig: Stubber) -> None:
    appconfig.add_response("get_latest_configuration", answer(json.dumps(TRENDING_FIRST).encode()))

    assignment = assign(ranking_config(), "user-1")

    assert (assignment.experiment, assignment.variant) == (None, "base")
    assert [s.id for s in assignment.config.ordered_sections] == ["trending", "buy_again", "popular"]


def test_an_invalid_or_unreachable_config_keeps_the_last_good_one(appconfig: Stubber) -> None:
    appconfig.add_response("get_latest_configuration", answer(json.dumps(TRENDING_FIRST).encode()))
    appconfig.add_response("get_latest_configuration", answer(b'{"base": {"sections": []}}'))
    appconfig.add_client_error("get_latest_configuration", "ThrottlingException")
    appconfig.add_client_error("get_latest_configuration", "AccessDeniedException")  # Powertools: StoreClientError

    good = ranking_config()

    assert ranking_config() == good  # an invalid document is refused
    assert ranking_config() == good  # and so is an error
    assert ranking_config() == good  # and a permission error


def test_before_any_good_config_the_packaged_default_serves(appconfig: Stubber) -> None:
    appconfig.add_response("get_latest_configuration", answer(b"not json"))

    assert ranking_config() == default_ranking_config()
