"""Choose the default profile's weights and thresholds by a grid search that looks only at data
before the back-test's cut-off T.

Imports the CDNOW log into a scratch database, computes every customer's features once as of the
selection cut-off S with the scorer's own SQL (`load_features`), then scores each candidate
profile in memory with `health.score` and ranks candidates by the ROC AUC of (100 - score) for
churn, labelled "no order in the 90 days after S": the labels end before T, so nothing after T is
looked at. The default profile, recency and BG/NBD (fitted on the history before S) are measured
on the same customers and labels. Thousands of candidates come within TOLERANCE of the best AUC
at S; among them the pick is the one with the best mean AUC at two earlier cut-offs (FOLDS, the
same 90-day labels), so a tie at S is broken by more data from before T rather than by taste.

Usage: python -m bench.profile_search   (needs the `bench` extra: lifetimes, pandas, scipy)
"""

import asyncio
import itertools
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import text

from bench.backtest import (
    CUTOFF,
    bgnbd_expected,
    churned,
    history_before,
    import_history,
    roc_auc,
)
from bench.cdnow import load_cdnow
from bench.harness import scratch_database
from services.core.config import Settings
from services.core.db import create_engine, create_sessionmaker
from services.core.scoring import health
from services.core.scoring.features import NAMES, Features
from services.core.scoring.profile import DEFAULT_PROFILE, ScoringProfile
from services.scorer.features import load_features

SELECTION = datetime(1997, 7, 1, tzinfo=UTC)
HORIZON = 90
assert SELECTION + timedelta(days=HORIZON) <= CUTOFF, "selection labels must end by T"
TOLERANCE = 0.001
FOLDS = (datetime(1997, 5, 1, tzinfo=UTC), datetime(1997, 6, 1, tzinfo=UTC))
TOP = 10

# CDNOW has no engagement, support or satisfaction data: those factors are the same for every
# customer, so they keep their default weights and the other five keep their default sum, or a
# candidate would shrink or grow their share of the score where they do vary. Frequency takes
# what recency, cadence, monetary trend and tenure leave. `monetary_trend.unknown` applies only
# to customers who never ordered, and every customer here ordered before S (the recency check in
# main fails on a NaN), so it is not searched; `cadence.unknown` is the neutral value of every
# one-time buyer and stays neutral. Cadence thresholds are varied only where cadence weighs.
UNMEASURED = ("engagement", "support", "satisfaction")
MEASURED = round(
    sum(w for name, w in DEFAULT_PROFILE.weights.model_dump().items() if name not in UNMEASURED), 2
)
GRID: dict[str, dict[str, tuple[float, ...]]] = {
    "weights": {
        "recency": (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45),
        "cadence": (0.0, 0.05, 0.1, 0.15, 0.2),
        "monetary_trend": (0.0, 0.05, 0.1),
        "tenure": (0.0, 0.05, 0.1),
    },
    "recency": {"good_days": (0, 30), "bad_days": (180, 270, 365, 540)},
    "frequency": {"target_orders_90d": (1, 3), "target_orders_365d": (4, 12)},
    "cadence": {
        "overdue_ratio": (2, 4, 8),
        "typical_interval_days": (30, 60),
        "typical_weight": (0, 1, 2),
    },
}

Changes = dict[str, dict[str, Any]]


def candidates() -> list[Changes]:
    """Every grid point as its changes to the default profile (defaults left out), the weights
    varying fastest. Points that score exactly like another with fewer changes are left out:
    cadence thresholds without cadence weight, a typical interval that weighs nothing."""
    default = DEFAULT_PROFILE.model_dump()
    leaves = sorted(
        ((part, name, values) for part, names in GRID.items() for name, values in names.items()),
        key=lambda leaf: leaf[0] == "weights",
    )
    default_cadence = {name: default["cadence"][name] for name in GRID["cadence"]}
    found = []
    for point in itertools.product(*(values for _, _, values in leaves)):
        full: dict[str, dict[str, float]] = {}
        for (part, name, _), value in zip(leaves, point, strict=True):
            full.setdefault(part, {})[name] = value
        full["weights"]["frequency"] = round(MEASURED - sum(full["weights"].values()), 2)
        cadence = full["cadence"]
        if (
            full["weights"]["frequency"] < 0
            or (full["weights"]["cadence"] == 0 and cadence != default_cadence)
            or (
                cadence["typical_weight"] == 0
                and cadence["typical_interval_days"] != default["cadence"]["typical_interval_days"]
            )
        ):
            continue
        changes: Changes = {}
        for part in (part for part in default if part in full):  # in the profile's order
            for name in default[part]:
                if name in full[part] and full[part][name] != default[part][name]:
                    changes.setdefault(part, {})[name] = full[part][name]
        found.append(changes)
    return found


def profile_of(changes: Changes) -> ScoringProfile:
    return ScoringProfile.model_validate({"version": DEFAULT_PROFILE.version + 1, **changes})


def changed(changes: Changes) -> int:
    return sum(len(part) for part in changes.values())


_REFS = text("SELECT id, external_ref FROM customers")


async def features_at(
    settings: Settings, customers: npt.NDArray[np.int64], as_of: datetime
) -> Features:
    """The scorer's features as of `as_of`, aligned with the customer numbers."""
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            number = {
                r.id: int(r.external_ref.removeprefix("CDNOW-"))
                for r in await session.execute(_REFS)
            }
            loaded = await load_features(session, list(number), as_of)
    finally:
        await engine.dispose()
    row = {number[i]: k for k, i in enumerate(loaded.ids)}
    order = np.array([row[c] for c in customers.tolist()], dtype=np.intp)
    return Features.from_columns({name: loaded.columns[name][order] for name in NAMES})


@dataclass(frozen=True)
class Result:
    auc: float
    changes: Changes


def search(features: Features, positive: npt.NDArray[np.bool_]) -> list[Result]:
    """AUC of every candidate, best first. Factor values are computed once per thresholds:
    `health.score` is `combine` of them with the weights."""
    results = []
    thresholds, values = "", {}
    for c in candidates():
        profile = profile_of(c)
        if (key := profile.model_dump_json(exclude={"weights"})) != thresholds:
            thresholds, values = key, health.factor_values(features, profile)
        scores = health.combine(values, profile.weights.normalised(), profile.bands)
        results.append(Result(roc_auc(100 - scores.score, positive), c))
    return sorted(results, key=lambda r: -r.auc)


def near_best(results: list[Result]) -> list[Result]:
    return [r for r in results if r.auc >= results[0].auc - TOLERANCE]


@dataclass(frozen=True)
class Fold:
    features: Features
    positive: npt.NDArray[np.bool_]


def fold_auc(changes: Changes, folds: list[Fold]) -> float:
    profile = profile_of(changes)
    return float(
        np.mean([roc_auc(100 - health.score(f.features, profile).score, f.positive) for f in folds])
    )


def pick(results: list[Result], folds: list[Fold]) -> tuple[Result, float]:
    """The near-best candidate with the best mean AUC at the earlier folds (then the fewest
    changes), and that mean."""
    scored = [(fold_auc(r.changes, folds), r) for r in near_best(results)]
    best, chosen = max(scored, key=lambda s: (s[0], -changed(s[1].changes)))
    return chosen, best


def main() -> None:
    started = time.perf_counter()
    orders = load_cdnow()
    selection = np.datetime64(SELECTION.date(), "D")
    history = history_before(orders, selection)
    customers = history.customer
    positive = churned(orders, customers, selection, HORIZON)

    with scratch_database() as settings:
        asyncio.run(import_history(settings, orders))
        features = asyncio.run(features_at(settings, customers, SELECTION))
        folds = []
        for cutoff in FOLDS:
            day = np.datetime64(cutoff.date(), "D")
            earlier = history_before(orders, day).customer
            folds.append(
                Fold(
                    asyncio.run(features_at(settings, earlier, cutoff)),
                    churned(orders, earlier, day, HORIZON),
                )
            )
    # The database holds the orders after S too: the features must not have seen them.
    if not np.allclose(features.days_since_order, history.days_since_last):
        raise RuntimeError("the scorer's days since the last order differ from the file's")
    loaded = time.perf_counter()

    results = search(features, positive)
    searched = time.perf_counter() - loaded
    chosen, chosen_folds = pick(results, folds)
    default = roc_auc(100 - health.score(features, DEFAULT_PROFILE).score, positive)
    recency = roc_auc(history.days_since_last, positive)
    params, expected = bgnbd_expected(history, (HORIZON,))
    bgnbd = roc_auc(-expected[HORIZON], positive)

    print(
        f"selection cut-off S: {SELECTION:%Y-%m-%d} UTC; {customers.shape[0]:,} customers with an "
        f"order before S; churned = no order in the {HORIZON} days after S "
        f"(labels end {SELECTION + timedelta(days=HORIZON):%Y-%m-%d}, T = {CUTOFF:%Y-%m-%d}): "
        f"{positive.mean():.1%}"
    )
    print(f"features as of S by load_features; BG/NBD fitted on the history before S: {params}")
    print(f"{len(results):,} candidate profiles scored in {searched:.1f} s")
    print()
    print(f"top {TOP} by ROC AUC at S (changes to the default profile):")
    for r in results[:TOP]:
        print(f"  {r.auc:.4f}  {r.changes}")
    print()
    print("ROC AUC for churn at S")
    for name, value in [
        ("100 - health score, default profile", default),
        ("recency: days since the last order", recency),
        (f"BG/NBD: -(expected orders in the {HORIZON} days)", bgnbd),
        ("100 - health score, best candidate", results[0].auc),
        ("100 - health score, pick", chosen.auc),
    ]:
        print(f"  {name:<50}{value:>8.4f}")
    best_baseline = max(recency, bgnbd)
    print()
    folds_named = ", ".join(f"{c:%Y-%m-%d}" for c in FOLDS)
    print(
        f"pick: among the {len(near_best(results))} candidates within {TOLERANCE} of the best, "
        f"the best mean AUC at the earlier cut-offs {folds_named}: {chosen_folds:.4f} "
        f"(the default there: {fold_auc({}, folds):.4f}); at S "
        f"{chosen.auc - best_baseline:+.4f} vs the better baseline, "
        f"{chosen.auc - default:+.4f} vs the default"
    )
    print(f"pick's changes to the default profile: {chosen.changes}")
    print(f"run time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
