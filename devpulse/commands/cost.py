"""`devpulse cost`: the books from the ledger, or the routing-mix simulator."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import click

from devpulse.commands.inputs import MAX_COUNT, MAX_TOKENS, Finite
from devpulse.core.costs import simulate

# `--by` choices: the ledger column each splits on (ids from the request's metadata).
SPLITS = {"session": "session_id", "user": "user_id"}
NO_ID = "(none)"  # requests whose caller gave no id


@click.command("cost")
@click.option("--since", metavar="DATE", help="Only requests since this date (YYYY-MM-DD).")
@click.option("--simulate", "simulating", is_flag=True, help="Run the routing-mix calculator.")
@click.option(
    "--requests-per-day",
    type=click.IntRange(0, MAX_COUNT),
    help="With --simulate: requests a day (a month is 30 days).",
)
@click.option(
    "--avg-in-tokens",
    type=click.IntRange(0, MAX_TOKENS),
    help="With --simulate: average input (prompt) tokens per request.",
)
@click.option(
    "--avg-out-tokens",
    type=click.IntRange(0, MAX_TOKENS),
    help="With --simulate: average output (answer) tokens per request.",
)
@click.option(
    "--local-share",
    type=Finite(0, 1),
    help="With --simulate: share of requests served locally, 0 to 1 (default: 1 minus "
    "routing.cloud_share, what routing by difficulty aims at).",
)
@click.option(
    "--cloud-model",
    help="With --simulate: the cloud model to price (default: the configured one).",
)
@click.option(
    "--by",
    "split",
    type=click.Choice(sorted(SPLITS)),
    help="Also split the books by the caller's session or user id.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def cost_command(
    app: Any,
    since: str | None,
    split: str | None,
    simulating: bool,
    requests_per_day: int | None,
    avg_in_tokens: int | None,
    avg_out_tokens: int | None,
    local_share: float | None,
    cloud_model: str | None,
    as_json: bool,
) -> None:
    """Blended cost, local share and savings from the ledger (or --simulate a routing mix).

    --simulate needs --requests-per-day, --avg-in-tokens and --avg-out-tokens;
    --local-share defaults to 1 - routing.cloud_share. Those options and --cloud-model
    go only with it; it reads no ledger, so --since and --by do not. --by session (or
    user) splits the books by the id the caller put in each request's metadata
    (``session_id``, ``user_id``).

    Exit codes: 0 reported, 2 usage or config error (a missing --simulate input, a
    --simulate option without --simulate, a bad --since date, the ledger disabled or
    unwritable).
    """
    if cloud_model is not None and not cloud_model.strip():
        raise click.UsageError("--cloud-model: give a model name")
    needed = {
        "--requests-per-day": requests_per_day,
        "--avg-in-tokens": avg_in_tokens,
        "--avg-out-tokens": avg_out_tokens,
        "--local-share": local_share,
    }
    if not simulating:
        given = [k for k, v in {**needed, "--cloud-model": cloud_model}.items() if v is not None]
        if given:
            raise click.UsageError(f"{', '.join(given)}: only with --simulate")
    elif since is not None or split is not None:
        option = "--since" if since is not None else "--by"
        raise click.UsageError(f"{option} reads the ledger: it does not apply to --simulate")
    if simulating:
        if local_share is None:
            local_share = 1.0 - app.config.policy.cloud_share
            needed["--local-share"] = local_share
        missing = [k for k, v in needed.items() if v is None]
        if missing:
            raise click.UsageError(f"--simulate needs {', '.join(missing)}")
        result = simulate(
            app.config,
            requests_per_day=requests_per_day or 0,
            avg_in_tokens=avg_in_tokens or 0,
            avg_out_tokens=avg_out_tokens or 0,
            local_share=local_share or 0.0,
            cloud_model=cloud_model,
        ).as_dict()
        _emit_simulation(result, as_json)
        return
    ledger = app.router.ledger
    if ledger is None:
        raise click.UsageError("the ledger is disabled (ledger.enabled = false)")
    rows = ledger.rows(_since(since))
    report = summarize(rows)
    report["ledger"] = str(ledger.path)
    if split is not None:
        report[f"by_{split}"] = split_by(rows, SPLITS[split])
    if as_json:
        click.echo(json.dumps({"status": "ok", **report}))
        return
    _print_report(report)
    if split is not None:
        _print_split(split, report[f"by_{split}"])


def split_by(rows: list[dict[str, Any]], column: str) -> dict[str, dict[str, float]]:
    """Per id, most spend first: requests, answered, tokens (prompt-cache ones apart), tool
    calls, spend, all-cloud."""
    groups: dict[str, dict[str, float]] = defaultdict(
        lambda: {
            "requests": 0,
            "answered": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "tool_calls": 0,
            "spend_usd": 0.0,
            "counterfactual_usd": 0.0,
        }
    )
    for r in rows:
        group = groups[r.get(column) or NO_ID]
        group["requests"] += 1
        if r["outcome"] != "answered":
            continue
        group["answered"] += 1
        group["input_tokens"] += r["input_tokens"]
        group["output_tokens"] += r["output_tokens"]
        group["cache_read_tokens"] += r.get("cache_read_tokens") or 0
        group["cache_write_tokens"] += r.get("cache_write_tokens") or 0
        group["tool_calls"] += r.get("tool_calls") or 0
        group["spend_usd"] += r["cost_usd"]
        group["counterfactual_usd"] += r["counterfactual_usd"]
    ranked = sorted(groups.items(), key=lambda kv: (-kv[1]["spend_usd"], kv[0]))
    return {k: _rounded(v) for k, v in ranked}


def _print_split(split: str, groups: dict[str, dict[str, float]]) -> None:
    click.echo(f"by {split}:")
    for name, g in groups.items():
        click.echo(
            f"  {name}: {g['requests']} requests ({g['answered']} answered), "
            f"{g['input_tokens']} in {g['output_tokens']} out, {g['tool_calls']} tool calls, "
            f"${g['spend_usd']:.4f}"
        )


def _since(value: str | None) -> float:
    if value is None:
        return 0.0
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.UsageError(f"--since: {value!r} is not a date (YYYY-MM-DD)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Requests and tokens by side, local share by requests and by dollars, savings.

    Spend and the all-cloud counterfactual are the rows' own prices, which include the
    prompt-cache tokens (`core/costs.py`); the cache counts are reported beside them.
    """
    answered = [r for r in rows if r["outcome"] == "answered"]
    sides: dict[str, dict[str, float]] = defaultdict(
        lambda: {
            "requests": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "spend_usd": 0.0,
            "counterfactual_usd": 0.0,
        }
    )
    classes: dict[str, dict[str, float]] = defaultdict(
        lambda: {"requests": 0, "local": 0, "spend_usd": 0.0, "counterfactual_usd": 0.0}
    )
    for r in answered:
        side = sides[r["side"]]
        side["requests"] += 1
        side["input_tokens"] += r["input_tokens"]
        side["output_tokens"] += r["output_tokens"]
        side["cache_read_tokens"] += r.get("cache_read_tokens") or 0
        side["cache_write_tokens"] += r.get("cache_write_tokens") or 0
        side["spend_usd"] += r["cost_usd"]
        side["counterfactual_usd"] += r["counterfactual_usd"]
        cls = classes[r["task_class"]]
        cls["requests"] += 1
        cls["local"] += r["side"] == "local"
        cls["spend_usd"] += r["cost_usd"]
        cls["counterfactual_usd"] += r["counterfactual_usd"]
    spend = sum(s["spend_usd"] for s in sides.values())
    all_cloud = sum(s["counterfactual_usd"] for s in sides.values())
    local = sides.get("local", {"requests": 0, "counterfactual_usd": 0.0})
    return {
        "requests": len(rows),
        "answered": len(answered),
        "failed": sum(r["outcome"] != "answered" for r in rows),
        "by_side": {k: _rounded(v) for k, v in sides.items()},
        "local_share_by_requests": round(local["requests"] / len(answered), 4) if answered else 0,
        "local_share_by_dollars": round(local["counterfactual_usd"] / all_cloud, 4)
        if all_cloud
        else 0,
        "cache_read_tokens": sum(s["cache_read_tokens"] for s in sides.values()),
        "cache_write_tokens": sum(s["cache_write_tokens"] for s in sides.values()),
        "spend_usd": round(spend, 6),
        "all_cloud_usd": round(all_cloud, 6),
        "savings_usd": round(all_cloud - spend, 6),
        "savings_pct": round(100 * (all_cloud - spend) / all_cloud, 2) if all_cloud else 0,
        "by_task_class": {k: _rounded(v) for k, v in sorted(classes.items())},
    }


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in values.items()}


def _print_report(r: dict[str, Any]) -> None:
    click.echo(f"{r['answered']} answered, {r['failed']} failed or refused (ledger {r['ledger']})")
    for side, s in r["by_side"].items():
        cached = (
            f"  {s['cache_read_tokens']} cache read {s['cache_write_tokens']} cache write"
            if s["cache_read_tokens"] or s["cache_write_tokens"]
            else ""
        )
        click.echo(
            f"  {side:<5} {s['requests']:>6} requests  {s['input_tokens']:>9} in "
            f"{s['output_tokens']:>9} out{cached}  ${s['spend_usd']:.4f}"
        )
    click.echo(
        f"local share: {r['local_share_by_requests']:.1%} of requests, "
        f"{r['local_share_by_dollars']:.1%} of dollars"
    )
    click.echo(
        f"spend ${r['spend_usd']:.4f} vs all-cloud ${r['all_cloud_usd']:.4f}: "
        f"saved ${r['savings_usd']:.4f} ({r['savings_pct']}%)"
    )


def _emit_simulation(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"status": "ok", **result}))
        return
    i = result["inputs"]
    click.echo(
        f"{i['requests_per_day']} requests/day x {i['days_per_month']} days, "
        f"{i['avg_in_tokens']} in / {i['avg_out_tokens']} out tokens, "
        f"{i['local_share']:.0%} local, cloud {i['cloud_model']}"
    )
    click.echo(
        f"blended ${result['blended_monthly_usd']:,.2f}/month vs all-cloud "
        f"${result['all_cloud_monthly_usd']:,.2f}: saves "
        f"${result['savings_monthly_usd']:,.2f} ({result['savings_pct']}%)"
    )
