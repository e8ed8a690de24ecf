"""Closed vocabularies of the domain, shared by models, schemas and the scorer."""

from enum import StrEnum


class ChannelType(StrEnum):
    agent = "agent"
    distributor = "distributor"
    reseller = "reseller"
    online = "online"
    direct = "direct"


class ChannelTier(StrEnum):
    core = "core"
    growth = "growth"
    potential = "potential"


class ChannelStatus(StrEnum):
    active = "active"
    paused = "paused"
    ended = "ended"


class ValueTier(StrEnum):
    A = "A"
    B = "B"
    C = "C"


class LifecycleStage(StrEnum):
    onboarding = "onboarding"
    active = "active"
    at_risk = "at_risk"
    churned = "churned"
    won_back = "won_back"


class InteractionKind(StrEnum):
    order = "order"
    payment = "payment"
    visit = "visit"
    call = "call"
    email = "email"
    meeting = "meeting"
    usage = "usage"
    feedback = "feedback"
    complaint = "complaint"
    referral = "referral"
    campaign_response = "campaign_response"


class TicketKind(StrEnum):
    complaint = "complaint"
    request = "request"
    incident = "incident"


class TicketPriority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class TicketStatus(StrEnum):
    open = "open"
    pending = "pending"
    resolved = "resolved"
    closed = "closed"


class Scope(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"


class AlertKind(StrEnum):
    inactivity = "inactivity"
    order_value_drop = "order_value_drop"
    complaints = "complaints"
    score_below = "score_below"
    score_drop = "score_drop"
    band_change = "band_change"
    sla_breach = "sla_breach"
    satisfaction_drop = "satisfaction_drop"


class AlertSubject(StrEnum):
    customer = "customer"
    channel = "channel"


class Severity(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class AlertStatus(StrEnum):
    open = "open"
    acknowledged = "acknowledged"
    resolved = "resolved"
    dismissed = "dismissed"
