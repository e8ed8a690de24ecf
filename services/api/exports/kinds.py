"""What each export holds: the rows a list endpoint would show, chosen by the same filter code,
as flat columns in a fixed order, oldest first by a unique key.

Columns, in order (`retention export --help` and the README list them too):

* customers: the fields of `CustomerRead`, then `health_score`, `health_band`, `health_as_of`
  (empty for a customer not scored yet); by `created_at`, `id`.
* interactions: the fields of `InteractionRead`; by `occurred_at`, `id`.
* alerts: the fields of `AlertRead` (with `rule_name`); by `opened_at`, `id`.
* scores: every scored customer's current health with who the customer is; by the customer's
  `created_at`, `id`.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, select

from services.api.alerts.schemas import AlertRead
from services.api.alerts.service import AlertFilters, alert_conditions
from services.api.customers import service as customer_service
from services.api.customers.schemas import CustomerRead
from services.api.customers.service import CustomerFilters
from services.api.exports.encoding import Field
from services.api.interactions import service as interaction_service
from services.api.interactions.schemas import InteractionRead
from services.api.interactions.service import InteractionFilters
from services.api.scoring.health import filter_health, with_health
from services.core.models import Alert, AlertRule, Customer, CustomerHealth, Interaction


class ExportKind(StrEnum):
    customers = "customers"
    interactions = "interactions"
    alerts = "alerts"
    scores = "scores"


@dataclass(frozen=True)
class Export:
    kind: ExportKind
    query: Select[Any]
    """Selects exactly `columns`, in order, ordered by a unique key."""

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.query.selected_columns.keys())

    @property
    def fields(self) -> tuple[Field, ...]:
        """Each column's name and the Python type of its values."""
        return tuple(
            (name, _python_type(column))
            for name, column in zip(self.columns, self.query.selected_columns, strict=True)
        )


def _python_type(column: ColumnElement[Any]) -> type | None:
    try:
        python_type: type = column.type.python_type
    except NotImplementedError:
        return None
    return python_type


SCORE_COLUMNS = (
    CustomerHealth.customer_id,
    Customer.external_ref,
    Customer.name,
    Customer.channel_id,
    Customer.owner,
    Customer.value_tier,
    Customer.lifecycle_stage,
    CustomerHealth.score,
    CustomerHealth.band,
    CustomerHealth.trend,
    CustomerHealth.as_of,
    CustomerHealth.profile_version,
    CustomerHealth.contributions,
    CustomerHealth.computed_at,
)


def customers(filters: CustomerFilters) -> Export:
    columns = [getattr(Customer, name) for name in CustomerRead.model_fields]
    query = customer_service.filtered(select(*columns), filters)
    query = with_health(query, CustomerHealth, CustomerHealth.customer_id == Customer.id)
    query = filter_health(query, CustomerHealth, filters.band, filters.score_min, filters.score_max)
    return Export(ExportKind.customers, query.order_by(Customer.created_at, Customer.id))


def interactions(filters: InteractionFilters) -> Export:
    columns = [getattr(Interaction, name) for name in InteractionRead.model_fields]
    query = interaction_service.filtered(select(*columns), filters)
    return Export(ExportKind.interactions, query.order_by(Interaction.occurred_at, Interaction.id))


def alerts(filters: AlertFilters) -> Export:
    columns = [
        AlertRule.name.label(name) if name == "rule_name" else getattr(Alert, name)
        for name in AlertRead.model_fields
    ]
    query = (
        select(*columns)
        .select_from(Alert)
        .join(AlertRule, AlertRule.id == Alert.rule_id)
        .where(*alert_conditions(filters))
    )
    return Export(ExportKind.alerts, query.order_by(Alert.opened_at, Alert.id))


def scores(filters: CustomerFilters) -> Export:
    """The customers export's filters; customers not scored yet have no row."""
    query = (
        select(*SCORE_COLUMNS)
        .select_from(CustomerHealth)
        .join(Customer, Customer.id == CustomerHealth.customer_id)
    )
    query = customer_service.filtered(query, filters)
    query = filter_health(query, CustomerHealth, filters.band, filters.score_min, filters.score_max)
    return Export(ExportKind.scores, query.order_by(Customer.created_at, Customer.id))
