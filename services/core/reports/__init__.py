"""Retention reports: the pre-aggregated figures they read and how they are rebuilt."""
