"""Loads the inferbox pytest plugin for every test under this checkout."""

pytest_plugins = ["fixtures.plugin", "fixtures.kind", "fixtures.load"]
