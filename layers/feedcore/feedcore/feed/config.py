"""The ranking config: which sections the feed has, how each ranks and caps its items, and experiments.

A section is a declaration — a candidate source, weights over signals, a size, diversity caps, a backfill —
so a product team changes the feed by editing the config (a JSON file locally, an AppConfig profile in the
cloud), not the code. An experiment names variants, each a partial override of the base config, and the
share of users each gets.
"""

# Annotations are evaluated as each class is made (no `from __future__ import annotations`): pydantic would compile
# and evaluate each field's from its text, a share of the feed function's cold start (README: Measured > Cold start).

from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from feedcore.db.attribution import UNKNOWN
from feedcore.errors import ConfigurationError

DEFAULT_CONFIG_FILE = Path(__file__).with_name("ranking.json")

# Where a section's candidates come from (each is a part of the feed's one read query, see feedcore.db.feed).
Source = Literal["buy_again", "goes_well_with", "trending", "popular", "favourite_aisles", "new_arrivals", "model"]
# What a candidate can be scored on. Each is normalized to 0..1 within a section before weighting.
Signal = Literal[
    "buy_again", "bought_together", "trending", "popularity", "affinity", "aisle_affinity", "model", "newness"
]
# The filters every candidate passes, in the order they are tried (the first that applies removes it).
Filter = Literal["inactive", "unavailable", "hidden", "excluded_tags", "just_purchased", "in_cart"]
ALL_FILTERS: tuple[Filter, ...] = ("inactive", "unavailable", "hidden", "excluded_tags", "just_purchased", "in_cart")
# What the API promises of every feed, whatever its config: active items the store sells, none the user hid, none
# with a tag the request excludes. A config orders these and chooses the others.
PROMISED_FILTERS: frozenset[Filter] = frozenset({"inactive", "unavailable", "hidden", "excluded_tags"})
# The variant of a degraded page (the Feed's `variant`, FeedServed's dimension): no config's.
DEGRADED_VARIANT = "degraded"


def _not_reserved(reserved: dict[str, str]) -> AfterValidator:
    """Refuses the names in `reserved` (name → what the service means by it)."""

    def check(name: str) -> str:
        if name in reserved:
            raise ValueError(f"{name!r} is reserved: {reserved[name]}")
        return name

    return AfterValidator(check)


SectionId = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]
# An experiment's or variant's name: also a metric dimension value (non-empty, at most 1,024 characters in EMF), a
# response field and a row of the report.
ExperimentName = Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[a-z][a-z0-9_\-]*$")]
VariantName = Annotated[
    ExperimentName,
    _not_reserved({
        DEGRADED_VARIANT: "the variant of degraded pages",
        UNKNOWN: "the report's variant of events whose feed it cannot match",
    }),
]  # fmt: skip
MAX_SECTION_SIZE = 50
MAX_CANDIDATES_PER_SLOT = 10
# The most items a source reads of a ranked list (the largest section's size × candidates_per_slot): a packed
# shelf's ranked lists keep no more (migration 0098).
MAX_POOL = MAX_SECTION_SIZE * MAX_CANDIDATES_PER_SLOT


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SectionConfig(_Config):
    """One section of the feed, declared from components."""

    id: Annotated[SectionId, _not_reserved({UNKNOWN: "the report's section of events that name no section"})]
    title: str = Field(min_length=1, max_length=80)
    source: Source
    model: str | None = Field(default=None, description="the imported model whose scores feed source 'model'")
    weights: dict[Signal, float] = Field(min_length=1, description="signal → weight; the score is the sum")
    size: int = Field(default=10, ge=1, le=MAX_SECTION_SIZE)
    max_per_aisle: int | None = Field(default=None, ge=1, description="diversity cap")
    max_per_brand: int | None = Field(default=None, ge=1, description="diversity cap")
    backfill_below: int = Field(
        default=0, ge=0, description="with fewer items than this, fill up to `size` from popular items"
    )

    @field_validator("weights")
    @classmethod
    def _weights_are_finite_and_not_negative(cls, weights: dict[str, float]) -> dict[str, float]:
        if any(not 0 <= weight < 1e6 for weight in weights.values()):
            raise ValueError("weights must be between 0 and 1e6")
        if not any(weights.values()):  # every score 0: the section's items would come in item id order
            raise ValueError("a section needs a weight above 0 (to hide a section, leave it out of section_order)")
        # -0.0 read as 0.0 (equal, but not alike in an explanation): the feed keeps rankings by their weights
        return {name: weight + 0.0 for name, weight in weights.items()}

    @model_validator(mode="after")
    def _model_source_names_its_model(self) -> Self:
        if (self.source == "model") != (self.model is not None):
            raise ValueError("a section has `model` exactly when its source is 'model'")
        return self


class FeedConfig(_Config):
    """The feed of one variant: sections in display order and the rules every section shares."""

    sections: list[SectionConfig] = Field(min_length=1, max_length=30)
    section_order: list[SectionId] | None = Field(
        default=None,
        min_length=1,  # none would serve every user of the variant an empty feed
        description="display order by id (sections left out are not shown); default: as listed",
    )
    filters: list[Filter] = Field(default=list(ALL_FILTERS))
    candidates_per_slot: int = Field(
        default=2, ge=1, le=MAX_CANDIDATES_PER_SLOT, description="pool read per source, × size"
    )
    just_purchased_days: float = Field(
        default=3, ge=0, description="an item bought this recently is hidden unless it is due again"
    )
    just_purchased_max_due: float = Field(default=0.5, ge=0, le=1, description="due-ness that keeps it")
    just_purchased_min_rebuy_rate: float = Field(
        default=0.3, ge=0, le=1, description="share of the user's later orders rebuying it that keeps it (a staple)"
    )
    new_arrival_days: int = Field(default=30, ge=1, le=365)
    favourite_aisles: int = Field(default=2, ge=1, le=10, description="the user's top aisles read")

    @field_validator("sections")
    @classmethod
    def _section_ids_unique(cls, sections: list[SectionConfig]) -> list[SectionConfig]:
        ids = [section.id for section in sections]
        if len(ids) != len(set(ids)):
            raise ValueError("section ids must be unique")
        return sections

    @field_validator("filters")
    @classmethod
    def _promised_filters_apply_once(cls, filters: list[Filter]) -> list[Filter]:
        if missing := PROMISED_FILTERS.difference(filters):
            raise ValueError(f"filters must include {sorted(missing)}: the API promises them of every feed")
        if len(set(filters)) != len(filters):  # a second entry would only try the filter again (a mistake's sign)
            raise ValueError("filters must name each filter at most once")
        return filters

    @model_validator(mode="after")
    def _order_names_known_sections(self) -> Self:
        if self.section_order is not None:
            unknown = set(self.section_order) - {section.id for section in self.sections}
            if unknown or len(set(self.section_order)) != len(self.section_order):
                raise ValueError(f"section_order must name each known section at most once (unknown: {unknown})")
        return self

    @property
    def ordered_sections(self) -> list[SectionConfig]:
        """The sections shown, in display order."""
        if self.section_order is None:
            return list(self.sections)
        by_id = {section.id: section for section in self.sections}
        return [by_id[section_id] for section_id in self.section_order]

    @property
    def models(self) -> tuple[str, ...]:
        """The imported models the shown sections read."""
        return tuple(sorted({section.model for section in self.ordered_sections if section.model is not None}))


class Variant(_Config):
    traffic: int = Field(ge=0, le=100, description="percent of users")
    overrides: dict[str, Any] = Field(default_factory=dict, description="fields of the base config replaced")


class Experiment(_Config):
    name: ExperimentName
    variants: dict[VariantName, Variant] = Field(min_length=1)

    @field_validator("variants")
    @classmethod
    def _traffic_adds_up(cls, variants: dict[str, Variant]) -> dict[str, Variant]:
        if sum(variant.traffic for variant in variants.values()) != 100:
            raise ValueError("the variants' traffic must add up to 100")
        return variants


class RankingConfig(_Config):
    """The whole document: a base feed config and, optionally, one running experiment."""

    base: FeedConfig
    experiment: Experiment | None = None

    @model_validator(mode="after")
    def _every_variant_is_valid(self) -> Self:
        _ = self._variant_configs  # raises on an override that breaks the config
        return self

    @cached_property
    def _variant_configs(self) -> dict[str, FeedConfig]:
        # Built once per config document, not per request.
        variants = self.experiment.variants if self.experiment else {}
        base = self.base.model_dump()
        return {name: FeedConfig.model_validate(base | variant.overrides) for name, variant in variants.items()}

    def variant_config(self, variant: str) -> FeedConfig:
        """The base config with the variant's overrides applied."""
        return self._variant_configs[variant]


def parse_ranking_config(document: dict[str, Any] | str | bytes, origin: str) -> RankingConfig:
    """Validate a ranking config document; ConfigurationError names what is wrong and where it came from."""
    try:
        if isinstance(document, dict):
            return RankingConfig.model_validate(document)
        return RankingConfig.model_validate_json(document)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
        raise ConfigurationError(f"invalid ranking config from {origin}: {problems}") from exc


@lru_cache(maxsize=4)
def ranking_config_from_file(path: Path) -> RankingConfig:
    """The ranking config in a JSON file (read once per container)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the ranking config {path}: {exc}") from exc
    return parse_ranking_config(text, str(path))


def default_ranking_config() -> RankingConfig:
    return ranking_config_from_file(DEFAULT_CONFIG_FILE)
