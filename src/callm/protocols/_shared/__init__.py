"""Helpers the wire protocols share: SSE, error mapping, OpenAI-family pieces."""
