"""All ORM models; importing this module registers every table on `Base.metadata`."""

from services.core.models.alerts import Alert, AlertNote, AlertRule
from services.core.models.api_keys import ApiKey
from services.core.models.audit import AuditEvent
from services.core.models.base import Base
from services.core.models.channels import Channel
from services.core.models.customers import Customer, CustomerChannelMembership
from services.core.models.events import OutboxEvent
from services.core.models.health import (
    ChannelHealth,
    ChannelHealthHistory,
    CustomerHealth,
    CustomerHealthHistory,
    LifecycleMove,
    ScoringProfile,
)
from services.core.models.idempotency import IdempotencyRecord
from services.core.models.imports import ImportRun
from services.core.models.interactions import Interaction, InteractionExternalId
from services.core.models.jobs import Job
from services.core.models.reports import (
    ReportCohort,
    ReportHealthDay,
    ReportPeriod,
    ReportRefresh,
    ReportSegment,
)
from services.core.models.sla import SlaPolicy
from services.core.models.tickets import Ticket
from services.core.models.webhooks import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
    WebhookSequence,
)

__all__ = [
    "Alert",
    "AlertNote",
    "AlertRule",
    "ApiKey",
    "AuditEvent",
    "Base",
    "Channel",
    "ChannelHealth",
    "ChannelHealthHistory",
    "Customer",
    "DeliveryStatus",
    "CustomerChannelMembership",
    "CustomerHealth",
    "CustomerHealthHistory",
    "IdempotencyRecord",
    "ImportRun",
    "Interaction",
    "InteractionExternalId",
    "Job",
    "ReportCohort",
    "ReportHealthDay",
    "ReportPeriod",
    "ReportRefresh",
    "ReportSegment",
    "LifecycleMove",
    "OutboxEvent",
    "ScoringProfile",
    "SlaPolicy",
    "Ticket",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookMessage",
    "WebhookSequence",
]
