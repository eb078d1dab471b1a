"""Ingestion: validated event batches into the append-only event log."""
