"""What every chaos check asserts about an experiment's journal."""

from __future__ import annotations

from typing import Any

from inferbox.chaos.session import Session


def assert_kept(journal: dict[str, Any], session: Session) -> None:
    """The journal shows the steady state before and after, every activity succeeded, and every
    promise judged was kept (the broken ones are named)."""
    assert journal.get("status") == "completed", f"experiment {journal.get('status')}: see {session.folder}"
    before = (journal.get("steady_states") or {}).get("before") or {}
    assert before.get("steady_state_met"), f"the steady state did not hold before the fault: {before}"
    failed = [
        r["activity"]["name"] + ": " + str(r.get("exception", "")[-1:])
        for r in journal.get("run", [])
        if r.get("status") != "succeeded"
    ]
    broken = [f"{v.name}: {v.detail}" for v in session.verdicts if not v.passed]
    assert session.verdicts, "no promise was judged: the experiment measured nothing"
    assert not broken, "promises broken: " + "; ".join(broken)
    assert not failed, f"activities failed: {failed}"
    after = (journal.get("steady_states") or {}).get("after") or {}
    assert after.get("steady_state_met"), f"the steady state did not come back after the fault: {after}"
    rollbacks = [r for r in journal.get("rollbacks", []) if r.get("status") != "succeeded"]
    assert not rollbacks, f"rollbacks failed: {rollbacks}"
