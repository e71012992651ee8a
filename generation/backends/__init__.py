"""The one client layer for OpenAI-compatible chat endpoints."""
