"""Streamed bulk exports of customers, interactions, alerts and current scores, as CSV or NDJSON:
the rows of the list endpoints with the same filters, read through a server-side cursor a chunk
at a time, so memory stays flat whatever the size. Used by `GET /v1/exports/...` and by
`retention export`."""
