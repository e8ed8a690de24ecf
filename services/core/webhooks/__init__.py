"""Outbound webhooks: Standard Webhooks signing, retry policy, target checks and single attempts."""
