"""Back-test: does the health score predict churn on real purchase data?

Imports the CDNOW transaction log (shipped by the `lifetimes` package) into a scratch database
with COPY, recomputes every customer's score as of a cut-off T through the real job path
(`run_recompute` with the default profile, which reads only interactions with occurred_at <= T),
and labels a customer churned when they place no order in the H days after T. Reports the ROC
AUC of (100 - score) for churn next to, in the same run, a recency-only baseline (days since the
last order as of T) and the BG/NBD model's expected purchases in the H days (negated), fitted on
the history before T with `lifetimes`.

Usage: python -m bench.backtest   (needs the `bench` extra: lifetimes, pandas, scipy)
"""

import asyncio
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt
from sqlalchemy import text
from uuid_utils.compat import uuid7

from bench.cdnow import FILE, Orders, load_cdnow
from bench.harness import scratch_database
from services.core.config import Settings
from services.core.db import asyncpg_dsn, create_engine, create_sessionmaker, session_scope
from services.core.models import Job
from services.core.scoring.profile import DEFAULT_PROFILE, FACTORS, ScoringProfile
from services.scorer.jobs.scoring import CHUNK, run_recompute
from services.scorer.scoring import rescore

Array = npt.NDArray[np.float64]

CUTOFF = datetime(1997, 10, 1, tzinfo=UTC)
"""39 weeks after the first day of the data: the calibration/holdout split usual for CDNOW."""
HORIZONS = (90, 180, 273)
"""Days after T without an order that count as churn; 273 days reaches the end of the data."""
ORDER_TIME = timedelta(hours=12)
"""The data has days only: an order is placed at noon UTC, so T falls cleanly between days."""
EPOCH = np.datetime64("1970-01-01", "D")
BOOTSTRAP = 200
WITHOUT_CADENCE_CHANGES: dict[str, Any] = {"weights": {"cadence": 0.0, "frequency": 0.40}}
WITHOUT_CADENCE = ScoringProfile.model_validate({"version": 2, **WITHOUT_CADENCE_CHANGES})
"""The default with cadence's weight moved to frequency: what the newest factor adds."""


@dataclass(frozen=True)
class History:
    """What is known as of T about the customers with an order before T, ordered by number."""

    customer: npt.NDArray[np.int64]
    orders: Array
    days_since_first: Array
    days_since_last: Array


def history_before(orders: Orders, cutoff: np.datetime64) -> History:
    before = orders.day < cutoff
    customer, at = np.unique(orders.customer[before], return_inverse=True)
    day = (orders.day[before] - EPOCH).astype(np.int64)
    first = np.full(customer.shape[0], np.iinfo(np.int64).max)
    last = np.full(customer.shape[0], np.iinfo(np.int64).min)
    np.minimum.at(first, at, day)
    np.maximum.at(last, at, day)
    today = (cutoff - EPOCH).astype(np.int64)
    return History(
        customer=customer,
        orders=np.bincount(at, minlength=customer.shape[0]).astype(np.float64),
        # Orders are at noon and T at midnight: half a day less than the calendar difference.
        days_since_first=(today - first - 0.5).astype(np.float64),
        days_since_last=(today - last - 0.5).astype(np.float64),
    )


def churned(
    orders: Orders, customers: npt.NDArray[np.int64], start: np.datetime64, days: int
) -> npt.NDArray[np.bool_]:
    window = (orders.day >= start) & (orders.day < start + np.timedelta64(days, "D"))
    return ~np.isin(customers, orders.customer[window])


def roc_auc(risk: Array, positive: npt.NDArray[np.bool_]) -> float:
    """Probability that a random positive has a higher risk than a random negative (ties half):
    the Mann-Whitney U statistic over mid-ranks."""
    _, group, counts = np.unique(risk, return_inverse=True, return_counts=True)
    mid_rank = (np.cumsum(counts) - (counts - 1) / 2.0)[group]
    n_pos = int(positive.sum())
    n_neg = positive.shape[0] - n_pos
    return float((mid_rank[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def bgnbd_expected(history: History, horizons: tuple[int, ...]) -> tuple[str, dict[int, Array]]:
    """BG/NBD fitted on the pre-T history, in weeks; expected purchases in each horizon."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifetimes sets options that pandas 3 deprecates
        from lifetimes import BetaGeoFitter
    frequency = history.orders - 1
    age = history.days_since_first / 7.0
    recency = (history.days_since_first - history.days_since_last) / 7.0
    model = BetaGeoFitter()
    model.fit(frequency, recency, age)
    expected = {
        h: np.asarray(
            model.conditional_expected_number_of_purchases_up_to_time(
                h / 7.0, frequency, recency, age
            ),
            dtype=np.float64,
        )
        for h in horizons
    }
    params = ", ".join(f"{k}={v:.3f}" for k, v in model.params_.items())
    return params, expected


async def import_history(settings: Settings, orders: Orders) -> int:
    """Customers and their orders (the whole log, after T too) with COPY; returns the order count."""
    conn = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    customers, first = np.unique(orders.customer, return_index=True)
    ids = {int(c): uuid.UUID(str(uuid7())) for c in customers.tolist()}
    noon = [
        datetime.fromisoformat(str(d)).replace(tzinfo=UTC) + ORDER_TIME for d in orders.day.tolist()
    ]
    await conn.copy_records_to_table(
        "customers",
        records=[
            (ids[c], f"CDNOW-{c:05d}", f"CDNOW customer {c}", noon[k])
            for c, k in zip(customers.tolist(), first.tolist(), strict=True)
        ],
        columns=["id", "external_ref", "name", "created_at"],
    )
    records = [
        (uuid.UUID(str(uuid7())), ids[c], "order", t, a, "USD", f"cdnow-{n}")
        for n, (c, t, a) in enumerate(
            zip(orders.customer.tolist(), noon, orders.amount.tolist(), strict=True)
        )
    ]
    columns = ["id", "customer_id", "kind", "occurred_at", "amount", "currency", "external_id"]
    await conn.copy_records_to_table("interactions", records=records, columns=columns)
    await conn.execute("ANALYZE")
    await conn.close()
    return len(records)


_SCORES = text("""
SELECT c.external_ref, h.score, h.contributions, h.profile_version,
  CAST(h.features->>'days_since_order' AS float8) AS days_since_order
FROM customer_health h JOIN customers c ON c.id = h.customer_id
WHERE h.as_of = :as_of
""")
_IDS = text("SELECT id FROM customers ORDER BY id")


@dataclass(frozen=True)
class Scored:
    score: dict[int, float]
    """By customer number."""
    contributions: dict[int, dict[str, float]]
    days_since_order: dict[int, float]
    """The feature the scorer computed from the database, to check against the file."""
    profile_version: int


async def recompute(settings: Settings, as_of: datetime, profile: ScoringProfile | None) -> Scored:
    """Scores as of `as_of`. The default profile goes through the job that
    `POST /v1/scoring/recompute` queues; another profile through the same `rescore` in chunks."""
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    try:
        if profile is None:
            async with session_scope(sessionmaker) as session:
                job = Job(
                    kind="recompute",
                    params={"as_of": as_of.isoformat(), "customer_ids": None},
                    created_by="bench",
                )
                session.add(job)
                await session.flush()
                job_id = str(job.id)
            status = await run_recompute({"sessionmaker": sessionmaker}, job_id)
            if status != "succeeded":
                raise RuntimeError(f"recompute job {job_id}: {status}")
        else:
            async with sessionmaker() as session:
                ids = list((await session.scalars(_IDS)).all())
            for start in range(0, len(ids), CHUNK):
                async with session_scope(sessionmaker) as session:
                    await rescore(session, ids[start : start + CHUNK], as_of, profile)
        async with sessionmaker() as session:
            rows = (await session.execute(_SCORES, {"as_of": as_of})).all()
    finally:
        await engine.dispose()
    number = [int(r.external_ref.removeprefix("CDNOW-")) for r in rows]
    versions = {r.profile_version for r in rows}
    if len(versions) != 1:
        raise RuntimeError(f"scores from profile versions {sorted(versions)}")
    return Scored(
        score={n: float(r.score) for n, r in zip(number, rows, strict=True)},
        contributions={n: r.contributions for n, r in zip(number, rows, strict=True)},
        days_since_order={n: r.days_since_order for n, r in zip(number, rows, strict=True)},
        profile_version=versions.pop(),
    )


def aligned(values: dict[int, float], customers: npt.NDArray[np.int64]) -> Array:
    return np.array([values[c] for c in customers.tolist()], dtype=np.float64)


Risk = dict[int, Array]
"""A churn risk per customer for each horizon (higher = more likely to churn)."""


def bootstrap_gain(
    risk: Array, baseline: Array, positive: npt.NDArray[np.bool_], rng: np.random.Generator
) -> tuple[float, float]:
    """95% interval of AUC(risk) - AUC(baseline) over customers resampled with replacement."""
    n = positive.shape[0]
    gains = []
    for _ in range(BOOTSTRAP):
        k = rng.integers(0, n, n)
        gains.append(roc_auc(risk[k], positive[k]) - roc_auc(baseline[k], positive[k]))
    low, high = np.quantile(gains, [0.025, 0.975])
    return float(low), float(high)


def report(
    header: list[str],
    labels: dict[int, npt.NDArray[np.bool_]],
    models: list[tuple[str, Risk]],
    factors: list[tuple[str, Risk]],
) -> None:
    """models: the default profile first, then the two baselines, then any variant."""

    def line(name: str, values: dict[int, float], fmt: str = ".3f") -> None:
        print(f"{name:<58}" + "".join(f"{values[h]:>10{fmt}}" for h in HORIZONS))

    def auc(risk: Risk) -> dict[int, float]:
        return {h: roc_auc(risk[h], labels[h]) for h in HORIZONS}

    print("\n".join(header))
    print()
    print(f"{'':<58}" + "".join(f"{f'H={h} d':>10}" for h in HORIZONS))
    line("churn rate", {h: float(labels[h].mean()) for h in HORIZONS}, ".1%")
    print("ROC AUC for churn")
    aucs = [(name, risk, auc(risk)) for name, risk in models]
    for name, _, value in aucs:
        line(f"  {name}", value)
    print("  single factors of the default profile (-points):")
    for name, risk in factors:
        line(f"    {name}", auc(risk))
    print()
    rng = np.random.default_rng(0)
    baselines = aucs[1:3]
    for name, risk, value in [aucs[0], *aucs[3:]]:
        for h in HORIZONS:
            best_name, best, best_auc = max(baselines, key=lambda b: b[2][h])
            low, high = bootstrap_gain(risk[h], best[h], labels[h], rng)
            verdict = "beats both" if value[h] > best_auc[h] else "does NOT beat both"
            print(
                f"H={h} d: {name.split(', ')[-1]} {verdict}: {value[h] - best_auc[h]:+.3f} "
                f"vs {best_name.split(':')[0]} (95% bootstrap interval {low:+.3f} to {high:+.3f})"
            )


def main() -> None:
    started = time.perf_counter()
    orders = load_cdnow()
    cutoff = np.datetime64(CUTOFF.date(), "D")
    history = history_before(orders, cutoff)
    customers = history.customer
    labels = {h: churned(orders, customers, cutoff, h) for h in HORIZONS}

    with scratch_database() as settings:
        imported = asyncio.run(import_history(settings, orders))
        default = asyncio.run(recompute(settings, CUTOFF, None))
        variant = asyncio.run(recompute(settings, CUTOFF, WITHOUT_CADENCE))
    if default.profile_version != DEFAULT_PROFILE.version:
        raise RuntimeError(f"the job scored with profile v{default.profile_version}")
    # The database holds the orders after T too: the scorer must not have seen them.
    leaked = ~np.isclose(aligned(default.days_since_order, customers), history.days_since_last)
    if leaked.any():
        raise RuntimeError(f"{int(leaked.sum())} customers' recency differs from the file's")
    params, expected = bgnbd_expected(history, HORIZONS)

    def same(risk: Array) -> Risk:
        return dict.fromkeys(HORIZONS, risk)

    models = [
        (
            f"100 - health score, default profile (v{default.profile_version})",
            same(100 - aligned(default.score, customers)),
        ),
        ("recency: days since the last order", same(history.days_since_last)),
        ("BG/NBD: -(expected orders in the H days)", {h: -e for h, e in expected.items()}),
        (
            f"100 - health score, default without cadence (v{variant.profile_version})",
            same(100 - aligned(variant.score, customers)),
        ),
    ]
    factors = [
        (name, same(-aligned({c: p[name] for c, p in default.contributions.items()}, customers)))
        for name in FACTORS
        if len({p[name] for p in default.contributions.values()}) > 1
    ]
    header = [
        f"data set: CDNOW transaction log (lifetimes {FILE[1]}): "
        f"{orders.customers.shape[0]:,} customers, {imported:,} orders (one per customer and day)",
        f"cut-off T: {CUTOFF:%Y-%m-%d %H:%M} UTC; scored as of T by run_recompute (orders <= T; "
        "the scorer's days since the last order match the file's for every customer)",
        f"customers with an order before T: {customers.shape[0]:,}; "
        "churned = no order in the H days after T",
        f"BG/NBD fitted on the history before T (in weeks): {params}",
    ]
    report(header, labels, models, factors)
    print(f"the variant changes the default: {WITHOUT_CADENCE_CHANGES}")
    print(f"run time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
