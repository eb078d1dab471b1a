"""The feed: candidates from the score tables, selected into sections."""
