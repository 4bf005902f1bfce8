"""`inferbox mutants run` names its survivors below the table, where a CI log's tail keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferbox import cli
from inferbox.mutants import model, runner
from inferbox.mutants.model import Mutant
from inferbox.mutants.runner import MutantResult, MutationRun


def _run(folder: Path, results: list[MutantResult]) -> MutationRun:
    return MutationRun(folder, {"t::a": "passed"}, results, "start", "end")


@pytest.mark.parametrize("survives", [True, False])
def test_survivors_are_named_after_the_table_with_their_output(
    survives: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "weak-mutant").mkdir()
    (tmp_path / "weak-mutant" / "pytest.log").write_text("noise\nE   1 passed in 3.2s\n")
    results = [
        MutantResult("strong-mutant", "breaks one thing", True, {"t::a": "failed"}, 1.0, "", "private"),
        MutantResult(
            "weak-mutant",
            "breaks another",
            not survives,
            {"t::a": "passed"},
            2.0,
            "1 named test(s) did not fail: t::a (passed)" if survives else "",
            "private",
        ),
    ]
    monkeypatch.setattr(runner, "run_all", lambda *args, **kwargs: _run(tmp_path, results))
    mutants = [Mutant(r.name, r.breaks, (), ("t::a",)) for r in results]
    monkeypatch.setattr(model, "load_mutants", lambda: mutants)
    monkeypatch.setattr(cli.console, "width", 80)
    args = cli.build_parser().parse_args(["mutants", "run", "--only", "strong-mutant", "weak-mutant"])

    code = args.func(args)

    tail = capsys.readouterr().out.split("mutants: ")[-1]
    assert code == (1 if survives else 0)
    if survives:
        assert "SURVIVED weak-mutant: 1 named test(s) did not fail: t::a (passed)" in tail
        assert "1 passed in 3.2s" in tail
        assert str(tmp_path / "weak-mutant" / "pytest.log") in tail.replace("\n", "")
    else:
        assert "SURVIVED" not in tail
