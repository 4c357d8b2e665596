"""The prompt argument shared by `route` and `ask`: PROMPT, '-' for stdin, or --file F."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from devpulse.core.types import TaskClass, choices

F = TypeVar("F", bound=Callable[..., Any])


def prompt_options(fn: F) -> F:
    """PROMPT, --file and --task, the way every prompt-taking command spells them."""
    fn = click.option(
        "--task",
        type=click.Choice(choices(TaskClass)),
        help="The task class, instead of inferring it.",
    )(fn)
    fn = click.option(
        "--file",
        "-f",
        "path",
        type=click.File("r", encoding="utf-8", errors="replace"),
        help="Read the prompt from a file ('-' for stdin).",
    )(fn)
    return click.argument("prompt", required=False)(fn)


def read_prompt(prompt: str | None, path: Any) -> str:
    """The prompt text; exactly one source must be given."""
    if (prompt is None) == (path is None):
        raise click.UsageError("give exactly one of PROMPT, '-' or --file F")
    if path is not None:
        return str(path.read())
    return sys.stdin.read() if prompt == "-" else str(prompt)
