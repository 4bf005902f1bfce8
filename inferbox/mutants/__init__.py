"""Mutants: small breaks of the platform, each with the checks that must notice it."""
