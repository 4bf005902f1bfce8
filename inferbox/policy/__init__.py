"""Evaluators of the platform's policies, independent of any target (the Cyclonus approach)."""
