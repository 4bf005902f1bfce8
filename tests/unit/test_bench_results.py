"""Benchmark claims stay true: the README's and docs/load.md's generated tables are exactly what the
saved results (bench/results/*.json) say, and figures are judged against their targets."""

from __future__ import annotations

import importlib
import json
import re
import shutil
from pathlib import Path

import pytest

from bench.results import RESULTS_DIR, SCHEMA, Figure, Result, load, save, stamp
from bench.suite import BENCHMARKS
from bench.table import BLOCKS, all_results, differences, markdown_table, rewrite, terminal_table

REPO = Path(__file__).resolve().parents[2]


def test_readme_and_docs_quote_the_saved_results() -> None:
    stale = differences(all_results())
    assert not stale, f"generated blocks differ from bench/results/*.json: {stale}; run `make bench-readme`"


def test_saved_results_say_what_was_measured_where_and_when() -> None:
    for path in sorted(RESULTS_DIR.glob("*.json")):
        body = json.loads(path.read_text())
        assert body["schema"] == SCHEMA, path
        assert path.stem in BENCHMARKS, f"{path.name} is no benchmark's result"
        assert re.fullmatch(r"[0-9a-f]{40}", body["commit"]), f"{path.name}: no commit"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["date"]), f"{path.name}: no date"
        assert body["machine"]["cpus"] >= 1, f"{path.name}: no machine"
        assert body["machine"]["cpu_model"], f"{path.name}: no machine"
        result = load(path.stem)
        assert result is not None
        assert result.figures, f"{path.name}: no figures"
        for figure, saved in zip(result.figures, body["figures"], strict=True):
            assert figure.passed == saved["passed"], f"{path.name}: {figure.key} judged differently"


def test_figures_are_judged_against_their_targets() -> None:
    assert Figure("e", "error", 0.4, "ms", "<=", 0.5).passed is True
    assert Figure("e", "error", 0.6, "ms", "<=", 0.5).passed is False
    assert Figure("c", "ceiling", 5000, "req/s", ">=", 5000).passed is True
    assert Figure("w", "wrk", 14000, "req/s").passed is None
    with pytest.raises(ValueError, match="needs both op"):
        Figure("x", "x", 1, "ms", "<=")
    with pytest.raises(ValueError, match="needs both op"):
        Figure("x", "x", 1, "ms", "<", 2)


def _result(value: float) -> Result:
    figures = [Figure("e", "median error", value, "ms", "<=", 0.5), Figure("w", "wrk median error", 0.3, "ms")]
    machine = {"cpus": 2, "cpu_model": "test", "load_average_before": [1.0], "cpu_busy_share_during_run": 0.5}
    return stamp(Result("load_accuracy", "accuracy", figures, {"raw": [1, 2]}), machine)


def test_a_result_survives_saving_and_loading(tmp_path: Path) -> None:
    result = _result(0.4)
    save(result, tmp_path)
    again = load("load_accuracy", tmp_path)
    assert again is not None
    assert again.to_json() == result.to_json()
    assert len(again.commit) == 40
    assert again.date.endswith("Z")


def test_the_generated_table_follows_the_results_and_a_stale_one_is_caught(tmp_path: Path) -> None:
    for file in BLOCKS:
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / file, tmp_path / file)
    failing = [("load_accuracy", _result(0.6)), ("load_ceiling", None)]
    rewrite(failing, tmp_path)
    readme = (tmp_path / "README.md").read_text()
    assert "| `load_accuracy` | median error | 0.600 ms | ≤ 0.500 ms | ✗ |" in readme
    assert "| `load_accuracy` | wrk median error | 0.300 ms |  |  |" in readme
    assert "| `load_ceiling` | not measured yet |" in readme
    assert differences(failing, tmp_path) == []
    (tmp_path / "README.md").write_text(readme.replace("0.600 ms", "0.400 ms"))
    assert differences(failing, tmp_path) == ["README.md: block all"]
    assert differences([("load_accuracy", _result(0.4)), ("load_ceiling", None)], tmp_path) != []


def test_the_terminal_table_marks_each_figure() -> None:
    text = terminal_table([("load_accuracy", _result(0.6)), ("cold_start", None)])
    assert "✗ median error" in text
    assert "cold_start: not measured yet" in text
    assert "✓" in terminal_table([("load_accuracy", _result(0.4))])
    assert markdown_table([]).startswith("| benchmark |")


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_can_be_run_and_judged(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    for attribute in ("TITLE", "run", "figures", "report"):
        assert hasattr(module, attribute), f"bench.{name} has no {attribute}"
