"""Wire protocols. Each module here is pure: callm types in, HTTP values out, and back."""
