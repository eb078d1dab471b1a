"""Scoring: the scheduled recomputation of the score tables the feed reads."""
