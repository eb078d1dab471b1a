"""The feed pipeline after the read: filters → signals → scoring → selection → sections. Pure functions, but
for the store-level candidates' screenings, kept with the shelf (StoreCandidates.screened).

Candidates arrive hydrated (feedcore.db.feed). Each filter removes what it applies to and says so; each
section scores its source's remaining candidates as a weighted sum of signals normalized within the
section, then takes the best, capped per aisle and brand, never an item shown earlier on the page, and
backfills from popular items when it starves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from functools import cache, cached_property

from msgspec import Struct, field

from feedcore.db.feed import Candidate
from feedcore.feed.config import Filter, SectionConfig, Signal
from feedcore.feed.scoring import BuyAgainParams, buy_again_score, due_ness, rebuy_rate
from feedcore.feed.shelves import RecentlyUsed

# New arrivals lose half their newness every week.
NEWNESS_HALF_LIFE = timedelta(days=7)
POPULAR_SOURCE = "popular"


class RankingContext(Struct, frozen=True):
    """What the pipeline needs besides the candidates."""

    now: datetime
    buy_again: BuyAgainParams
    filters: Sequence[Filter]
    just_purchased: timedelta
    just_purchased_max_due: float
    just_purchased_min_rebuy_rate: float
    excluded_tags: frozenset[str] = frozenset()
    ordered_at: Sequence[datetime] = ()  # the user's scored orders, in time order
    aisle_affinities: Mapping[str, float] = field(default_factory=dict)  # the user's, by aisle
    explain: bool = True  # keep each signal's contribution (debug=true); else only the score


# --- filters ----------------------------------------------------------------------------------------


def last_purchase(candidate: Candidate) -> datetime | None:
    """The latest purchase of the item, counting events not scored yet."""
    scored, recent = candidate.last_purchased_at, candidate.recent_purchase_at
    if scored is None or recent is None:
        return recent if scored is None else scored
    return max(scored, recent)


def is_hidden(candidate: Candidate) -> bool:
    """Hidden by the user: a hide not followed by a purchase or an add to cart, scored or not yet."""
    hide, positive = candidate.recent_hide_at, candidate.recent_positive_at
    if hide is not None and (positive is None or hide >= positive):
        return True
    if positive is not None:  # bought or carted lately: hidden only by a (scored) hide after that
        return candidate.last_hidden_at is not None and candidate.last_hidden_at > positive
    return candidate.hidden


def _just_purchased(candidate: Candidate, context: RankingContext) -> bool:
    bought = last_purchase(candidate)
    if bought is None or context.now - bought > context.just_purchased:
        return False
    # A purchase of the last hours counts once: the scores may already include it.
    unscored = candidate.recent_purchase_at is not None and (
        candidate.last_purchased_at is None or candidate.recent_purchase_at > candidate.last_purchased_at
    )
    count = candidate.purchase_count + unscored
    first = candidate.first_purchased_at or bought
    # A staple of the user's baskets is due at their next order, whenever it comes (unless bought in the last hours;
    # so its count is of scored orders, as are the user's).
    if (
        candidate.recent_purchase_at is None
        and rebuy_rate(count, first, context.ordered_at) >= context.just_purchased_min_rebuy_rate
    ):
        return False
    return due_ness(count, first, bought, context.now, context.buy_again.due_width) < context.just_purchased_max_due


FILTERS: dict[Filter, Callable[[Candidate, RankingContext], bool]] = {
    "inactive": lambda c, _: not c.active,
    "unavailable": lambda c, _: c.available is False,
    "hidden": lambda c, _: is_hidden(c),
    "excluded_tags": lambda c, context: not context.excluded_tags.isdisjoint(c.tags),
    "just_purchased": _just_purchased,
    "in_cart": lambda c, _: c.in_cart,
}


class Removal(Struct, frozen=True):
    item_id: str
    source: str
    filter: Filter


def only_just_purchased_applies(candidate: Candidate, excluded_tags: frozenset[str]) -> bool:
    """Whether no filter of FILTERS but just_purchased can remove the candidate (keep in step with them): an active
    item available at the store, without excluded tags, that the user has neither hidden, carted nor bought or
    carted lately — most candidates, told apart by attributes instead of a call per filter. just_purchased itself
    removes only an item the user bought (see last_purchase)."""
    return (
        candidate.active
        and candidate.available is not False
        and not candidate.in_cart
        and not candidate.hidden
        and candidate.recent_hide_at is None
        and candidate.recent_positive_at is None
        and (not excluded_tags or excluded_tags.isdisjoint(candidate.tags))
    )


def apply_filters(candidates: Iterable[Candidate], context: RankingContext) -> tuple[list[Candidate], list[Removal]]:
    """The candidates every filter keeps, and for each removed one the first filter that removed it."""
    kept, removed = [], []
    filters = [(name, FILTERS[name]) for name in context.filters]
    just_purchased = "just_purchased" in context.filters
    excluded_tags = context.excluded_tags
    for candidate in candidates:
        if only_just_purchased_applies(candidate, excluded_tags):
            bought = candidate.last_purchased_at is not None or candidate.recent_purchase_at is not None
            if bought and just_purchased and _just_purchased(candidate, context):
                removed.append(Removal(candidate.item_id, candidate.source, "just_purchased"))
            else:
                kept.append(candidate)
            continue
        for name, applies in filters:
            if applies(candidate, context):
                removed.append(Removal(candidate.item_id, candidate.source, name))
                break
        else:
            kept.append(candidate)
    return kept, removed


# The filters that read only the item, the store and the request (not the user): over a store-level source's
# candidates (the shelf's, for no user in particular) they are tried once per shelf, ranking config and request
# exclusions (see StoreCandidates.screened); the others cannot remove a candidate without the user's facts.
STORE_FILTERS: frozenset[Filter] = frozenset({"inactive", "unavailable", "excluded_tags"})
# The (filters, excluded tags) screenings a store-level source keeps: exclusions come from requests, unbounded.
SCREENINGS_KEPT = 4


# The signals that read only the candidate (not the clock, nor the user's aisles): over a store-level source's own
# candidates (no user's facts, no model score) they are the same for every request at the shelf, so a section that
# weights only these ranks them once per screening (Screening.ranked); newness reads the clock, aisle_affinity the user.
CANDIDATE_SIGNALS: frozenset[Signal] = frozenset({"bought_together", "trending", "popularity", "affinity", "model"})
# The rankings a screening keeps: two weightings of a source (experiment variants weighting it otherwise; the popular
# section and the popular backfill weight alike in the default config), each with and without explanations.
RANKINGS_KEPT = 4


class Screening(Struct, frozen=True, dict=True):  # dict: room for `rankings`
    """A store-level source's candidates through the store-level filters: those kept, the removals, and per
    candidate its removal or None (in the candidates' order); and the kept ones as ranked (made as first asked for,
    at most RANKINGS_KEPT)."""

    kept: tuple[Candidate, ...]
    removed: tuple[Removal, ...]
    removals: tuple[Removal | None, ...]

    @cached_property
    def rankings(self) -> RecentlyUsed[tuple[tuple[tuple[Signal, float], ...], bool], tuple[Ranked, ...]]:
        """The rankings made (see StoreShelf.candidates)."""
        return RecentlyUsed(RANKINGS_KEPT)

    def ranked(self, weights: dict[Signal, float], context: RankingContext) -> tuple[Ranked, ...]:
        """The kept candidates as `rank` orders them with `weights`, all of them CANDIDATE_SIGNALS (so the context
        counts only for whether it explains). Shared by the requests: never change them."""
        return self.rankings.get(
            (tuple(weights.items()), context.explain), lambda: tuple(ranking(self.kept, weights, context))
        )


class StoreCandidates(Struct, frozen=True, dict=True):  # dict: room for `screenings`
    """A store-level source's candidates at a store, for no user in particular (no history, no recent events, no
    model score), in catalog order, and their screenings (made as first asked for, at most SCREENINGS_KEPT)."""

    candidates: tuple[Candidate, ...]  # a tuple: what a request adds to its own list cannot reach the shelf's
    item_ids: frozenset[str]

    @cached_property
    def screenings(self) -> RecentlyUsed[tuple[tuple[Filter, ...], frozenset[str]], Screening]:
        """The screenings made (see StoreShelf.candidates)."""
        return RecentlyUsed(SCREENINGS_KEPT)

    def screened(self, context: RankingContext) -> Screening:
        """The candidates through the context's store-level filters (in its order) and its excluded tags (when it
        filters by them)."""
        filters = tuple(name for name in context.filters if name in STORE_FILTERS)
        excluded = context.excluded_tags if "excluded_tags" in filters else frozenset()

        def screen() -> Screening:
            removals = []
            for candidate in self.candidates:
                name = next((name for name in filters if FILTERS[name](candidate, context)), None)
                removals.append(None if name is None else Removal(candidate.item_id, candidate.source, name))
            return Screening(
                tuple(c for c, removal in zip(self.candidates, removals, strict=True) if removal is None),
                tuple(removal for removal in removals if removal is not None), tuple(removals),
            )  # fmt: skip

        return self.screenings.get((filters, excluded), screen)


class SourceCandidates(Struct, frozen=True):
    """A source's candidates for one request, in catalog order. For a store-level source, `shared` is the shelf's
    own: `candidates` holds its objects, but for items made again with the user's facts."""

    source: str
    candidates: Sequence[Candidate]
    shared: StoreCandidates | None = None


def filter_sources(
    proposed: Iterable[SourceCandidates], context: RankingContext
) -> tuple[dict[str, Sequence[Candidate]], list[Removal], dict[str, Screening]]:
    """Each source's candidates every filter keeps, and the removals (by source in `proposed` order, then in
    candidate order) with the first filter that removed each, as apply_filters over all of them would give. A
    store-level source's own candidates take their screening (see StoreCandidates.screened); those made again for
    the user go through every filter. Last, the screening of each source whose kept candidates are its screening's
    (nothing made again for this user)."""
    kept_by_source: dict[str, Sequence[Candidate]] = {}
    removed: list[Removal] = []
    screened: dict[str, Screening] = {}
    for source in proposed:
        shared, candidates = source.shared, source.candidates
        if shared is None:
            kept_by_source[source.source], source_removed = apply_filters(candidates, context)
            removed += source_removed
            continue
        screening = shared.screened(context)
        if candidates is shared.candidates:  # nothing made again for this user
            kept_by_source[source.source] = screening.kept
            removed += screening.removed
            screened[source.source] = screening
            continue
        made_again = [c for c, own in zip(candidates, shared.candidates, strict=True) if c is not own]
        removal_of = {r.item_id: r for r in apply_filters(made_again, context)[1]}  # a store list has an item once
        kept = []
        for candidate, own, removal in zip(candidates, shared.candidates, screening.removals, strict=True):
            if candidate is not own:
                removal = removal_of.get(candidate.item_id)
            if removal is None:
                kept.append(candidate)
            else:
                removed.append(removal)
        kept_by_source[source.source] = kept
    return kept_by_source, removed, screened


# --- signals and scores -----------------------------------------------------------------------------


def _buy_again(candidate: Candidate, context: RankingContext) -> float:
    if candidate.purchase_count > 0 and candidate.first_purchased_at and candidate.last_purchased_at:
        return buy_again_score(
            candidate.purchase_raw, candidate.purchase_count, candidate.first_purchased_at,
            candidate.last_purchased_at, context.now, context.buy_again, candidate.item_orders, candidate.item_buyers,
        )  # fmt: skip
    return 0.0


def _newness(candidates: Sequence[Candidate], context: RankingContext) -> list[float]:
    now, half_life = context.now, NEWNESS_HALF_LIFE
    return [math.pow(2, -max((now - c.created_at) / half_life, 0.0)) for c in candidates]


def _model(candidates: Sequence[Candidate], _: RankingContext) -> list[float]:
    # A model section ranks by its own model; elsewhere the signal is the best score of the config's models.
    return [(c.source_score if c.source.startswith("model:") else c.model_score) or 0.0 for c in candidates]


# Every signal of the candidates, unnormalized, in candidate order (stored scores are epoch-relative: comparable
# between the candidates of one request, which is all normalization needs). A section computes only those it
# weights; each over the whole list at once.
SIGNALS: dict[Signal, Callable[[Sequence[Candidate], RankingContext], list[float]]] = {
    "buy_again": lambda cs, context: [_buy_again(c, context) for c in cs],
    "bought_together": lambda cs, _: [(c.source_score or 0.0) if c.source == "goes_well_with" else 0.0 for c in cs],
    "trending": lambda cs, _: [c.trending_score for c in cs],
    "popularity": lambda cs, _: [c.popularity_raw for c in cs],
    "affinity": lambda cs, _: [c.affinity_raw for c in cs],
    "aisle_affinity": lambda cs, context: [context.aisle_affinities.get(c.aisle, 0.0) for c in cs],
    "model": _model,
    "newness": _newness,
}


class Ranked(Struct, frozen=True):
    """A candidate with its section score and what each weighted signal contributed to it (empty when the
    context does not explain)."""

    candidate: Candidate
    score: float
    contributions: dict[str, float]
    backfill: bool = False


def _normalized(values: list[float], weight: float) -> list[float]:
    """weight × each value onto 0..1 within a section: divided by the largest value; a signal that can be
    negative (model scores) is shifted by its smallest first. A signal that is the same for every candidate
    counts 0."""
    largest, smallest = max(values, default=0.0), min(values, default=0.0)
    if smallest < 0 and largest > smallest:
        span = largest - smallest
        if span == math.inf:  # imported model scores may be any finite floats: halved (exactly), the span is finite
            values, smallest, span = [value / 2 for value in values], smallest / 2, largest / 2 - smallest / 2
        return [weight * ((value - smallest) / span) for value in values]
    if largest > 0:
        return [weight * (value / largest) for value in values]
    return [0.0] * len(values)


def rank(candidates: Sequence[Candidate], weights: dict[Signal, float], context: RankingContext) -> list[Ranked]:
    """Score = Σ weight × signal normalized within these candidates (see _normalized); best first, ties by
    item_id so that the order is deterministic. Contributions only when the context explains."""
    return list(ranking(candidates, weights, context))


def ranking(candidates: Sequence[Candidate], weights: dict[Signal, float], context: RankingContext) -> Iterator[Ranked]:
    """The candidates as `rank` orders them, one at a time: a section takes its first few (select), and the
    others are never made into Ranked."""
    # per signal: weight × normalized value of each candidate, in candidate order
    weighted = [_normalized(SIGNALS[name](candidates, context), weight) for name, weight in weights.items()]
    scores = [sum(column) for column in zip(*weighted, strict=True)]
    # Sorted as (-score, item_id, position) tuples: no key function per candidate; the position keeps the
    # order of equal ones (an item a model proposes twice) as a stable sort would.
    negated, item_ids = [-score for score in scores], [c.item_id for c in candidates]
    order = sorted(zip(negated, item_ids, range(len(candidates)), strict=True))
    if context.explain:
        names = list(weights)
        contributions = list(zip(*weighted, strict=True))
        for _, _, position in order:
            yield Ranked(candidates[position], scores[position], dict(zip(names, contributions[position], strict=True)))
    else:
        for _, _, position in order:
            yield Ranked(candidates[position], scores[position], {})


# --- selection --------------------------------------------------------------------------------------


class _Caps(Struct):
    spec: SectionConfig
    # taken per aisle and per brand (dicts read with get: a Counter's missing key costs a Python call)
    aisles: dict[str, int] = field(default_factory=dict)
    brands: dict[str, int] = field(default_factory=dict)

    def admit(self, candidate: Candidate) -> bool:
        """Take the candidate if neither its aisle nor its brand is at the section's cap."""
        aisle, brand, spec = candidate.aisle, candidate.brand, self.spec
        taken_in_aisle = self.aisles.get(aisle, 0)
        if spec.max_per_aisle is not None and taken_in_aisle >= spec.max_per_aisle:
            return False
        if brand is not None:
            taken_of_brand = self.brands.get(brand, 0)
            if spec.max_per_brand is not None and taken_of_brand >= spec.max_per_brand:
                return False
            self.brands[brand] = taken_of_brand + 1
        self.aisles[aisle] = taken_in_aisle + 1
        return True


def select(
    ranked: Iterable[Ranked], spec: SectionConfig, shown: set[str], backfill: Callable[[], Sequence[Ranked]]
) -> list[Ranked]:
    """Up to `spec.size` of `ranked` in order, skipping items in `shown` and those over the diversity caps;
    topped up from `backfill()` (popular items, asked for only then) when fewer than `spec.backfill_below` were
    found. Adds the chosen items to `shown`."""
    caps, chosen = _Caps(spec), []
    for candidate in ranked:
        if len(chosen) == spec.size:
            break
        if candidate.candidate.item_id not in shown and caps.admit(candidate.candidate):
            chosen.append(candidate)
            shown.add(candidate.candidate.item_id)
    if len(chosen) < spec.backfill_below:
        for candidate in backfill():
            if len(chosen) == spec.size:
                break
            if candidate.candidate.item_id not in shown and caps.admit(candidate.candidate):
                chosen.append(Ranked(candidate.candidate, candidate.score, candidate.contributions, backfill=True))
                shown.add(candidate.candidate.item_id)
    return chosen


def popular_fallback(candidates: Iterable[Candidate], context: RankingContext, size: int = 20) -> list[Ranked]:
    """Of the popular source's `candidates`, the store's most popular items that are active and available, for
    anyone (no user's filters)."""
    shelf = [c for c in candidates if c.active and c.available is not False]
    return rank(shelf, {"popularity": 1.0}, context)[:size]


def source_key(spec: SectionConfig) -> str:
    """The source name candidates of this section carry (models are told apart by name)."""
    return f"model:{spec.model}" if spec.source == "model" else spec.source


class SelectedSection(Struct, frozen=True):
    spec: SectionConfig
    items: list[Ranked]


def select_sections(
    proposed: Iterable[SourceCandidates], specs: Sequence[SectionConfig], context: RankingContext
) -> tuple[list[SelectedSection], list[Removal]]:
    """Filter each source's candidates (filter_sources), then fill each section in display order; an item appears
    once per feed.

    Returns the non-empty sections and every removal with its filter.
    """
    by_source, removed, screened = filter_sources(proposed, context)

    def ranked(source: str, weights: dict[Signal, float]) -> Iterable[Ranked]:
        """The source's kept candidates as `rank` orders them: a screening's ranking when it has one for them."""
        screening = screened.get(source)
        if screening is not None and CANDIDATE_SIGNALS.issuperset(weights):
            return screening.ranked(weights, context)
        return ranking(by_source.get(source, ()), weights, context)

    # ranked only for a section that starves (rarely: a store with hardly any trending items)
    popular = cache(lambda: list(ranked(POPULAR_SOURCE, {"popularity": 1.0})))
    shown: set[str] = set()
    sections = []
    for spec in specs:
        chosen = select(ranked(source_key(spec), spec.weights), spec, shown, popular)
        if chosen:
            sections.append(SelectedSection(spec, chosen))
    return sections, removed
