"""Pure numpy scoring: features -> health scores, bands, value tiers, lifecycle stages. No I/O."""

from services.core.scoring.channels import ChannelScores, channel_health
from services.core.scoring.features import Features
from services.core.scoring.health import Band, HealthScores, score, trend
from services.core.scoring.lifecycle import next_stage
from services.core.scoring.profile import DEFAULT_PROFILE, ScoringProfile
from services.core.scoring.tiers import value_tiers

__all__ = [
    "DEFAULT_PROFILE",
    "Band",
    "ChannelScores",
    "Features",
    "HealthScores",
    "ScoringProfile",
    "channel_health",
    "next_stage",
    "score",
    "trend",
    "value_tiers",
]
