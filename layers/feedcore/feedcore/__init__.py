"""Shared domain package of the feed assembly service (the Lambda layer)."""
