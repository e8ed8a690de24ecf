"""Bulk import of customers, channels, interactions and tickets from CSV and NDJSON files."""
