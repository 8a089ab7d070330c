"""Features over a model call: tool loop, structured output, conversations, tokens."""
