"""The Google Gemini API protocol."""
