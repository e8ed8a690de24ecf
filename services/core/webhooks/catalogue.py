"""The event types a subscriber can ask for: a documented, versioned catalogue. Adding a type is
a compatible change; renaming one or removing a field of its `data` is not."""

from typing import Final

EVENT_TYPES: Final[dict[str, str]] = {
    "customer.health.changed": "A customer's score moved by 5 points or more from its "
    "previous score, or its band changed. `data`: customer_id, score, previous_score, band, "
    "previous_band, reason (the factors whose points moved most), as_of, profile_version, link.",
    "customer.band.changed": "A customer's band changed (e.g. yellow to red). `data` as for "
    "`customer.health.changed`.",
    "channel.health.changed": "A channel's score moved by 5 points or more, or its band "
    "changed. `data`: channel_id and the same figures.",
    "alert.opened": "An alert rule fired for a subject that had no open alert of that rule. "
    "`data`: alert_id, rule_id, subject, severity, reason, owner, due_at.",
    "alert.updated": "An open alert fired again, or its status, owner or notes changed.",
    "alert.resolved": "An alert was resolved, by a person or because its condition cleared.",
    "ticket.sla_due_soon": "An open ticket used up the due-soon share (e.g. 80%) of its "
    "first-response or resolution target, counted in working time without pauses. `data`: "
    "ticket_id, customer_id, channel_id, target (`first_response` or `resolution`), due_at, "
    "priority, assignee, link.",
    "ticket.sla_breached": "An open ticket passed its first-response or resolution due time "
    "without the answer. `data` as for `ticket.sla_due_soon`.",
    "webhook.endpoint.disabled": "This endpoint was disabled after failing every delivery for "
    "too long, or answering 410 Gone; sent to the other endpoints that subscribe to it.",
    "webhook.test": "Sent by `POST /v1/webhooks/{id}/test` to that endpoint only.",
}
ANY: Final = "*"
CATALOGUE_VERSION: Final = 1
