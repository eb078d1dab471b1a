"""Which ranking config a user gets: the config document (a file, or AppConfig in the cloud) and a
deterministic assignment of users to the running experiment's variants."""

from __future__ import annotations

import hashlib
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from msgspec import Struct

from feedcore.aws_calls import appconfig_document
from feedcore.errors import ConfigurationError
from feedcore.feed.config import (
    FeedConfig,
    RankingConfig,
    default_ranking_config,
    parse_ranking_config,
    ranking_config_from_file,
)
from feedcore.observability import logger, metrics
from feedcore.settings import FeedSettings, feed_settings

# The variant of users when no experiment runs.
BASE_VARIANT = "base"


class Assignment(Struct, frozen=True):
    """The config a user's feed is built with, and the experiment variant that chose it."""

    experiment: str | None
    variant: str
    config: FeedConfig


def bucket(experiment: str, user_id: str) -> int:
    """The user's bucket 0..99 in an experiment: a hash of both, so the same user always lands in the same
    bucket of one experiment and buckets of different experiments are independent."""
    digest = hashlib.sha256(f"{experiment}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def assign(ranking: RankingConfig, user_id: str) -> Assignment:
    """The variant of `user_id`: buckets are handed out to the variants in the order they are listed."""
    experiment = ranking.experiment
    if experiment is None:
        return Assignment(None, BASE_VARIANT, ranking.base)
    user_bucket, upper = bucket(experiment.name, user_id), 0
    for name, variant in experiment.variants.items():
        upper += variant.traffic
        if user_bucket < upper:
            return Assignment(experiment.name, name, ranking.variant_config(name))
    raise AssertionError("variant traffic adds up to 100")  # enforced by Experiment


_parsed: dict[str, Any] = {}


def _unusable(origin: str, exc: ConfigurationError, serving: str) -> None:
    """Say that the config document of `origin` cannot be used and which config `serving` says serves instead (an
    error log line and RankingConfigErrors)."""
    logger.error(f"ranking config from {origin} unusable; {serving}", extra={"error": str(exc)})
    metrics.add_metric(name="RankingConfigErrors", unit=MetricUnit.Count, value=1)


def _from_appconfig(settings: FeedSettings) -> RankingConfig:
    """The config profile in AppConfig, fetched through Powertools (cached for max_age seconds) and parsed
    again only when its content changes. If AppConfig cannot be read or holds an invalid config, the feed
    keeps the last good config (or, before any, the packaged default) and says so in the logs: a bad
    deployment of the config must not take the feed down."""
    try:
        document = appconfig_document(
            settings.appconfig_application, settings.appconfig_environment, settings.appconfig_profile,
            max_age_s=settings.appconfig_max_age_s,
        )  # fmt: skip
        if _parsed.get("document") != document:
            _parsed.update(document=document, config=parse_ranking_config(document, "AppConfig"))
    except ConfigurationError as exc:
        _unusable("AppConfig", exc, "keeping the last good one (or the packaged default)")
    return _parsed.get("config") or default_ranking_config()


def configured_ranking_config() -> RankingConfig:
    """FEED_RANKING_CONFIG_FILE's config, else the packaged default; ConfigurationError when the file cannot be read
    or holds an invalid config (what the offline evaluation reads: it must judge the config it was given)."""
    path = feed_settings().ranking_config_file
    return ranking_config_from_file(path) if path is not None else default_ranking_config()


def ranking_config() -> RankingConfig:
    """The ranking config the feed serves with: AppConfig when configured, else FEED_RANKING_CONFIG_FILE, else the
    packaged default. A file that cannot be read or holds an invalid config is said (as AppConfig's is) and the
    packaged default serves meanwhile (the file is read again on the next request): a bad config must not take
    the feed down."""
    settings = feed_settings()
    if settings.appconfig_application:
        return _from_appconfig(settings)
    try:
        return configured_ranking_config()
    except ConfigurationError as exc:
        _unusable("FEED_RANKING_CONFIG_FILE", exc, "serving the packaged default")
        return default_ranking_config()
