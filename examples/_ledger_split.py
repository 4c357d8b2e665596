"""The cost split of one example run, read back from the DevPulse ledger."""

from __future__ import annotations

from typing import Any

from devpulse import Router


def split(router: Router, session_id: str) -> dict[str, Any]:
    """Requests, tokens and dollars per side for `session_id`, and what all-cloud would cost."""
    ledger = router.ledger
    rows = [r for r in (ledger.rows() if ledger else []) if r["session_id"] == session_id]
    sides: dict[str, dict[str, float]] = {}
    for row in rows:
        side = sides.setdefault(
            row["side"] or "none", {"requests": 0, "tokens": 0, "spend_usd": 0.0}
        )
        side["requests"] += 1
        side["tokens"] += row["input_tokens"] + row["output_tokens"]
        side["spend_usd"] += row["cost_usd"]
    spend = sum(r["cost_usd"] for r in rows)
    all_cloud = sum(r["counterfactual_usd"] for r in rows)
    return {"sides": sides, "spend_usd": spend, "all_cloud_usd": all_cloud}


def print_split(router: Router, session_id: str) -> None:
    figures = split(router, session_id)
    for side, f in sorted(figures["sides"].items()):
        print(
            f"  {side:<5} {int(f['requests']):>3} requests {int(f['tokens']):>6} tokens"
            f"  ${f['spend_usd']:.6f}"
        )
    spend, all_cloud = figures["spend_usd"], figures["all_cloud_usd"]
    saved = all_cloud - spend
    pct = 100 * saved / all_cloud if all_cloud else 0.0
    print(f"spend ${spend:.6f} vs all-cloud ${all_cloud:.6f}: saved ${saved:.6f} ({pct:.0f}%)")
