"""The scoring profile: versioned weights, thresholds and band cut-offs, replaced through the API."""

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Weights(_Part):
    """Non-negative weights, at least one positive; only their ratios matter."""

    @model_validator(mode="after")
    def _one_positive(self) -> Self:
        if not any(getattr(self, name) > 0 for name in type(self).model_fields):
            raise ValueError("at least one weight must be positive")
        return self

    def normalised(self) -> dict[str, float]:
        names = type(self).model_fields
        total = sum(getattr(self, name) for name in names)
        return {name: getattr(self, name) / total for name in names}


# The order-based weights (recency, frequency, cadence, monetary trend, tenure: 0.65 together)
# and their thresholds are the pick of `python -m bench.profile_search` on the CDNOW back-test,
# which sees only data from before its cut-off.
class FactorWeights(_Weights):
    """Relative weight of each factor; normalised to sum 1, so only the ratios matter."""

    recency: float = Field(default=0.15, ge=0, description="Days since the last order.")
    frequency: float = Field(default=0.25, ge=0, description="Orders in the last 90 and 365 days.")
    cadence: float = Field(
        default=0.15,
        ge=0,
        description="How overdue the next order is against the customer's own mean interval.",
    )
    monetary_trend: float = Field(
        default=0.0, ge=0, description="Revenue of the last 90 days against the 90 before."
    )
    engagement: float = Field(
        default=0.10, ge=0, description="Non-order interactions in the last 90 days."
    )
    support: float = Field(
        default=0.15, ge=0, description="Open tickets, complaints and SLA breaches."
    )
    satisfaction: float = Field(
        default=0.10, ge=0, description="Latest rating and its drop against the earlier average."
    )
    tenure: float = Field(
        default=0.10,
        ge=0,
        description="How long the customer was active: first seen to last interaction.",
    )


FACTORS: tuple[str, ...] = tuple(FactorWeights.model_fields)


class Recency(_Part):
    good_days: float = Field(
        default=0, ge=0, description="An order this recent (or more) earns full recency points."
    )
    bad_days: float = Field(
        default=540, gt=0, description="No order for this many days earns no recency points."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.good_days >= self.bad_days:
            raise ValueError("good_days must be less than bad_days")
        return self


class Frequency(_Part):
    target_orders_90d: float = Field(
        default=3, gt=0, description="Orders in 90 days that earn the 90-day half in full."
    )
    target_orders_365d: float = Field(
        default=4, gt=0, description="Orders in 365 days that earn the 365-day half in full."
    )


class Cadence(_Part):
    """The overdue ratio is the days since the last order over the customer's mean interval
    between orders, that mean shrunk toward a typical interval while orders are few."""

    on_rhythm_ratio: float = Field(
        default=1.0,
        ge=0,
        description="An overdue ratio at or below this scores 1: the next order is not late yet.",
    )
    overdue_ratio: float = Field(
        default=8.0, gt=0, description="An overdue ratio at or above this scores 0."
    )
    typical_interval_days: float = Field(
        default=60,
        gt=0,
        description="A typical interval between orders, the prior for a customer's own mean.",
    )
    typical_weight: float = Field(
        default=2,
        ge=0,
        description="How many intervals the typical one counts as in the mean: it dominates a "
        "customer with few orders and fades with many; 0 uses the customer's own mean only.",
    )
    min_interval_days: float = Field(
        default=7,
        gt=0,
        description="Floor on the mean interval: several orders on one day do not make the "
        "customer overdue the next day.",
    )
    unknown: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Factor value (0-1) for a customer with fewer than two orders: no rhythm yet.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.on_rhythm_ratio >= self.overdue_ratio:
            raise ValueError("on_rhythm_ratio must be less than overdue_ratio")
        return self


class MonetaryTrend(_Part):
    zero_at_ratio: float = Field(
        default=0.5,
        ge=0,
        description="Revenue of the last 90 days over the 90 before at or below which the factor is 0.",
    )
    full_at_ratio: float = Field(
        default=1.0, gt=0, description="The ratio at or above which the factor is 1 (no decline)."
    )
    unknown: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Factor value (0-1) for a customer who never ordered; one who ordered before "
        "but not in either window gets 0.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.zero_at_ratio >= self.full_at_ratio:
            raise ValueError("zero_at_ratio must be less than full_at_ratio")
        return self


class Engagement(_Part):
    target_90d: float = Field(
        default=6, gt=0, description="Non-order interactions in 90 days that earn full points."
    )


class Support(_Part):
    """Each count divided by its limit adds to the burden; a burden of 1 or more scores 0."""

    complaints_bad: float = Field(
        default=3, gt=0, description="Complaints in 90 days that alone make support fully bad."
    )
    open_tickets_bad: float = Field(
        default=5, gt=0, description="Open tickets that alone make support fully bad."
    )
    sla_breaches_bad: float = Field(
        default=3, gt=0, description="SLA breaches in 90 days that alone make support fully bad."
    )


class Satisfaction(_Part):
    """Ratings on a 1-5 scale; the level maps linearly from `poor` (0) to `good` (1)."""

    poor: float = Field(default=2.0, ge=1, le=5, description="A rating at or below this scores 0.")
    good: float = Field(default=4.5, ge=1, le=5, description="A rating at or above this scores 1.")
    full_drop: float = Field(
        default=2.0,
        gt=0,
        description="A fall of this many points below the earlier average removes the whole level.",
    )
    unknown: float = Field(
        default=0.5, ge=0, le=1, description="Factor value (0-1) when no rating was ever given."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.poor >= self.good:
            raise ValueError("poor must be less than good")
        return self


class Tenure(_Part):
    mature_days: float = Field(
        default=365, gt=0, description="Tenure at which the factor reaches 1; it grows linearly."
    )


class Bands(_Part):
    """Score cut-offs: green at or above `green`, yellow at or above `yellow`, red below."""

    green: float = Field(default=70, ge=0, le=100, description="Lowest green score.")
    yellow: float = Field(default=40, ge=0, le=100, description="Lowest yellow score.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.yellow >= self.green:
            raise ValueError("yellow must be less than green")
        return self


class ChannelWeights(_Weights):
    customers: float = Field(
        default=0.70, ge=0, description="Revenue-weighted mean score of the channel's customers."
    )
    activity: float = Field(
        default=0.15, ge=0, description="The channel's own interactions in the last 90 days."
    )
    tickets: float = Field(
        default=0.15, ge=0, description="Open tickets per customer of the channel."
    )


CHANNEL_FACTORS: tuple[str, ...] = tuple(ChannelWeights.model_fields)


class Channels(_Part):
    weights: ChannelWeights = ChannelWeights()
    activity_target_90d: float = Field(
        default=20, gt=0, description="Channel interactions in 90 days that earn full points."
    )
    open_tickets_bad_per_customer: float = Field(
        default=0.5, gt=0, description="Open tickets per customer at which the ticket factor is 0."
    )


EXAMPLE: dict[str, Any] = {
    "version": 3,
    "weights": {
        "recency": 0.35,
        "frequency": 0.1,
        "cadence": 0.1,
        "monetary_trend": 0.1,
        "engagement": 0.05,
        "support": 0.15,
        "satisfaction": 0.1,
        "tenure": 0.05,
    },
    "recency": {"good_days": 14, "bad_days": 120},
    "bands": {"green": 75, "yellow": 45},
    "churn_inactivity_days": 120,
}


class ScoringProfile(_Part):
    """How a health score is computed. Omitted parts take their defaults."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    version: int = Field(default=1, ge=1, description="Stored with every score it produced.")
    weights: FactorWeights = Field(default=FactorWeights(), description=FactorWeights.__doc__)
    recency: Recency = Field(
        default=Recency(),
        description="Linear from `good_days` (full points) to `bad_days` (none); a customer who "
        "never ordered is measured from the last interaction instead.",
    )
    frequency: Frequency = Field(
        default=Frequency(),
        description="Half from orders in 90 days, half from orders in 365 days, each growing "
        "with log(1 + orders) up to its target.",
    )
    cadence: Cadence = Field(
        default=Cadence(),
        description="Linear in the overdue ratio, from `on_rhythm_ratio` (full points) to "
        "`overdue_ratio` (none): a frequent buyer gone quiet scores lower than an occasional one "
        "at the same recency.",
    )
    monetary_trend: MonetaryTrend = Field(
        default=MonetaryTrend(),
        description="Linear in the revenue ratio; new revenue after none counts as no decline.",
    )
    engagement: Engagement = Field(
        default=Engagement(), description="Grows with log(1 + interactions) up to the target."
    )
    support: Support = Field(default=Support(), description=Support.__doc__)
    satisfaction: Satisfaction = Field(default=Satisfaction(), description=Satisfaction.__doc__)
    tenure: Tenure = Field(default=Tenure(), description="Short tenure is slightly less healthy.")
    bands: Bands = Field(default=Bands(), description=Bands.__doc__)
    churn_inactivity_days: float = Field(
        default=180, gt=0, description="A customer without any interaction this long is churned."
    )
    onboarding_days: float = Field(
        default=30, ge=0, description="A new customer stays in onboarding this long."
    )
    channels: Channels = Field(default=Channels(), description="Channel health.")


DEFAULT_PROFILE = ScoringProfile()
