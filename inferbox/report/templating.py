"""The Jinja2 environment of the reports: templates ship as package data in ``templates/``."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup

from inferbox.report.failures import safe_name


def test_anchor(test_id: str) -> str:
    """The element id of a test's row in summary.html."""
    return "test-" + safe_name(test_id)


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("inferbox.report", "templates"),
        autoescape=True,  # every template renders HTML or SVG
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda value, digits=3: f"{value:.{digits}g}" if isinstance(value, float) else value
    env.filters["test_anchor"] = test_anchor
    return env


def render(template: str, **context: Any) -> Markup:
    # The templates autoescape every value they insert, so their output is safe markup.
    return Markup(environment().get_template(template).render(**context))  # noqa: S704
