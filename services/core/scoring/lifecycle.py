"""Lifecycle stage moves, decided from the latest score and activity.

onboarding stays while tenure < `onboarding_days` (unknown tenure counts as new), then moves like
active. active (and won_back, which behaves like it) -> at_risk when red; at_risk -> active when
no longer red. Any stage -> churned after more than `churn_inactivity_days` without an
interaction (or, never having interacted, after that much tenure). churned -> won_back when an
interaction falls within that window again, or straight to at_risk if the score is still red.
Applying `next_stage` twice to the same inputs gives the same stage as applying it once.
"""

import numpy as np
import numpy.typing as npt

from services.core.models.enums import LifecycleStage
from services.core.scoring.health import Band
from services.core.scoring.profile import ScoringProfile

Stage = LifecycleStage


def next_stage(
    current: npt.ArrayLike,
    band: npt.ArrayLike,
    days_since_interaction: npt.ArrayLike,
    tenure_days: npt.ArrayLike,
    profile: ScoringProfile,
) -> npt.NDArray[np.str_]:
    stage = np.asarray(current, dtype=np.str_)
    unknown = ~np.isin(stage, [s.value for s in Stage])
    if unknown.any():
        raise ValueError(f"unknown lifecycle stages: {sorted(set(stage[unknown].tolist()))[:5]}")
    red = np.asarray(band, dtype=np.str_) == Band.red.value
    days = np.asarray(days_since_interaction, dtype=np.float64)
    tenure = np.asarray(tenure_days, dtype=np.float64)
    limit = profile.churn_inactivity_days

    inactive = (days > limit) | (np.isnan(days) & (tenure > limit))
    returned = days <= limit
    new = ~(tenure >= profile.onboarding_days)
    was = {s: stage == s.value for s in Stage}

    return np.select(
        [
            inactive,
            was[Stage.churned] & ~returned,
            was[Stage.onboarding] & new,
            red,
            was[Stage.churned] | was[Stage.won_back],
        ],
        [
            s.value
            for s in (Stage.churned, Stage.churned, Stage.onboarding, Stage.at_risk, Stage.won_back)
        ],
        default=Stage.active.value,
    )
