"""Placeholder replaced by the completion generator (being written)."""
