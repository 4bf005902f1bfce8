"""summary.html in a real browser (headless Chromium): failures first and readable, the filters
hide and show tests, and the links open the test's output and evidence."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium as this machine runs it headless: no sandbox (root), and no calls home that a closed
# network would refuse.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SAMPLE = """
import json
import pytest

def test_passes(evidence):
    evidence.figure("latency_ms", {"p50": 1.5})

def test_skips():
    pytest.skip("target embedded lacks capability: grafana")

def test_isolation(evidence):
    print("probing 2 callers")
    evidence.artifact("isolation-matrix.json", [
        {"source": "tenant-a", "destination": "tenant-a/m:http/8080", "expected": "A", "observed": "A"},
        {"source": "tenant-b", "destination": "tenant-a/m:http/8080", "expected": "-", "observed": "A"},
    ])
    assert False, "tenant-b reached tenant-a's model"

@pytest.mark.parametrize("tenant", ["tenant-a", "tenant-c"])
def test_canary(tenant):
    assert tenant == "tenant-a", f"{tenant}: 3 of 400 requests went to the canary"
"""

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="the browser test needs Debian's chromium (scripts/system-deps installs it when run as root)",
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    (root / "test_sample.py").write_text(SAMPLE)
    folder = root / "report"
    subprocess.run(
        [
            *(sys.executable, "-m", "pytest", str(root / "test_sample.py")),
            *("-p", "no:cacheprovider", "--inferbox-report-dir", str(folder), "--rootdir", str(root)),
        ],
        cwd=REPO,
        capture_output=True,
        check=False,
        timeout=300,
    )
    assert (folder / "summary.html").exists()
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object, report: Path) -> Iterator[object]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page.goto((report / "summary.html").as_uri())
    yield page
    page.close()


def test_failures_come_first_with_their_message_on_top(page: object) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    headings = page.locator("body > section > h2").all_inner_texts()
    assert headings[0] == "Failures (2)"
    first = page.locator("article.failure").first
    expect(first.locator("pre.message")).to_be_visible()
    expect(first.locator("pre.message")).to_contain_text("tenant-b reached tenant-a's model")
    traceback = first.locator("details.traceback pre")
    expect(traceback).to_be_hidden()
    first.locator("details.traceback summary").click()
    expect(traceback).to_be_visible()
    expect(traceback).to_contain_text("assert False")
    expect(page.locator(".counts .badge.failed")).to_have_text("2 failed")


def test_the_filters_hide_and_show_tests(page: object) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    rows = page.locator("table.tests tbody tr")
    expect(page.locator("#shown")).to_have_text("showing 5 of 5 tests")
    page.uncheck("input[name=outcome][value=passed]")
    page.uncheck("input[name=outcome][value=skipped]")
    expect(page.locator("#shown")).to_have_text("showing 2 of 5 tests")
    visible = [row.get_attribute("data-outcome") for row in rows.all() if row.is_visible()]
    assert visible == ["failed", "failed"]
    page.fill("input[name=text]", "tenant-c")
    expect(page.locator("#shown")).to_have_text("showing 1 of 5 tests")
    expect(page.locator("article.failure:visible")).to_have_count(1)
    page.fill("input[name=text]", "")
    page.check("input[name=outcome][value=passed]")
    page.locator(".counts .badge.skipped").click()  # a badge shows only its outcome
    expect(page.locator("#shown")).to_have_text("showing 1 of 5 tests")


def test_links_open_the_output_and_the_evidence(page: object, report: Path) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    card = page.locator("article.failure", has_text="tenant-b reached")
    card.locator("a", has_text="output").click()
    assert "probing 2 callers" in page.locator("body").inner_text()
    page.go_back()
    card.locator("a", has_text="isolation-matrix.json").click()
    assert "tenant-b" in page.locator("body").inner_text()
    page.go_back()
    page.locator("#matrices td.cell.differs").first.wait_for()
    for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))"):
        if href.startswith("#"):
            assert page.locator(f"[id='{href[1:]}']").count() == 1, href
        else:
            assert (report / href).exists(), href
