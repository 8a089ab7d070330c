"""Core values every layer shares: types, errors, media, HTTP values, timeouts."""
