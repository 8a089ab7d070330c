"""The policies around each call: retry, rate limits, routing, cache, cost, tracing, call log."""
