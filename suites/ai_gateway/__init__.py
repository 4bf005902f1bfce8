"""Checks of the AI Gateway: OpenAI-compatible access to the generative models."""
