"""`devpulse ask`: route and answer; the decision and any fallback go to stderr."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from devpulse.commands.inputs import MAX_TOKENS
from devpulse.commands.prompt import prompt_options, read_prompt
from devpulse.core.costs import counterfactual_cost, request_cost
from devpulse.core.types import Chunk, Decision, Request, Response, TaskClass, block_dict

if TYPE_CHECKING:
    from devpulse.core.pipeline import Router


@click.command("ask")
@prompt_options
@click.option(
    "--stream",
    is_flag=True,
    help="Print the answer as it arrives (with --json: one JSON object per line).",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(1, MAX_TOKENS),
    default=1024,
    show_default=True,
    help="The most tokens the answer may have; the model stops there.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def ask_command(
    app: Any,
    prompt: str | None,
    path: Any,
    task: str | None,
    stream: bool,
    max_tokens: int,
    as_json: bool,
) -> None:
    """Answer PROMPT through the router ('-' reads stdin).

    With --stream, a fallback that restarts a broken answer is shown: the cut text ends
    with a newline, a note goes to stderr, and the answer starts again. With --stream
    --json, each line is a JSON object, one per stream event: {"type": "block_start",
    "index", "block"}, {"type": "text_delta", "index", "text"} (or "tool_input_delta" with
    "partial_json"), {"type": "block_stop", "index"}, {"type": "usage", "usage"},
    {"type": "restart"}; then the whole result as without --stream, with "type": "result".

    Exit codes: 0 answered, 1 no answer (every attempt failed, or privacy or preflight
    refused it; stderr says what was tried) or the output was cut (a closed pipe), 2 usage
    or config error, or bad input (an empty prompt, more than input.max_bytes).
    """
    text = read_prompt(prompt, path, app.config.input.max_bytes)
    request = Request.from_prompt(
        text, task=TaskClass(task) if task else None, max_tokens=max_tokens
    )
    router: Router = app.router
    decision = router.route(request)
    click.echo(f"devpulse: {_describe(decision)}", err=True)
    response = _stream(router, request, as_json) if stream else router.invoke(request)
    if response.backend != decision.backend:
        click.echo(
            f"devpulse: answered by {response.side}/{response.backend} "
            f"({response.model}) after {decision.backend} failed",
            err=True,
        )
    usage = response.usage
    cache = {"cache_read": usage.cache_read_tokens, "cache_write": usage.cache_write_tokens}
    cost = request_cost(
        router.config,
        response.side,
        response.model,
        usage.input_tokens,
        usage.output_tokens,
        **cache,
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "status": "ok",
                    **({"type": "result"} if stream else {}),
                    "answer": response.as_dict(),
                    "cost_usd": round(cost, 6),
                    "counterfactual_usd": round(
                        counterfactual_cost(
                            router.config, usage.input_tokens, usage.output_tokens, **cache
                        ),
                        6,
                    ),
                    "decision": decision.as_dict(),
                }
            )
        )
    elif not stream:
        click.echo(response.text)
    _usage_line(response, cost)


def _stream(router: Router, request: Request, as_json: bool) -> Response:
    """Print chunks as they come; a restart is announced, never spliced."""
    response = None
    at_line_start = True
    for chunk in router.stream(request):
        if chunk.response is not None:
            response = chunk.response
        elif as_json:
            click.echo(json.dumps({"status": "ok", **_event(chunk)}))
            if chunk.restart:
                click.echo("devpulse: the answer broke off; starting again on a fallback", err=True)
        elif chunk.restart:
            if not at_line_start:
                click.echo()
            click.echo("devpulse: the answer broke off; starting again on a fallback", err=True)
            at_line_start = True
        elif chunk.type == "text_delta":
            click.echo(chunk.text, nl=False)
            at_line_start = chunk.text.endswith("\n")
    if not as_json:
        click.echo()
    assert response is not None  # the router raises rather than end without an answer
    return response


def _event(chunk: Chunk) -> dict[str, Any]:
    """A chunk as one JSON line: its type and index, and what it carries."""
    out: dict[str, Any] = {"type": chunk.type}
    if chunk.is_content:
        out["index"] = chunk.index
    if chunk.type in ("text_delta", "thinking_delta"):
        out["text"] = chunk.text
    elif chunk.type == "tool_input_delta":
        out["partial_json"] = chunk.partial_json
    elif chunk.block is not None:
        out["block"] = block_dict(chunk.block)
    elif chunk.usage is not None:
        out["usage"] = chunk.usage.as_dict()
    return out


def _describe(decision: Decision) -> str:
    c = decision.classification
    task = f"task {c.task_class} ({c.task_rule}), privacy {c.privacy_level.label}" if c else ""
    return f"{decision.side} -> {decision.backend}/{decision.model}; {task}"


def _usage_line(response: Response, cost: float) -> None:
    click.echo(
        f"devpulse: {response.usage.input_tokens} in / {response.usage.output_tokens} out"
        f" tokens, {response.latency_s:.2f} s, ${cost:.6f}",
        err=True,
    )
