"""LLM steps: each has a prompt builder, an output parser and filters."""
