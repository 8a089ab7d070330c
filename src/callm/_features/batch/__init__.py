"""Batch work: many requests from a JSON Lines file, concurrent, rate-limited, resumable."""
