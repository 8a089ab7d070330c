"""Configuration: settings, provider entries, keys."""
