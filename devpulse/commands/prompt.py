"""The prompt argument shared by `route` and `ask`: PROMPT, '-' for stdin, or --file F."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from devpulse.commands.inputs import (
    PROBE_BYTES,
    as_text,
    binary_reason,
    read_bounded,
    read_stdin,
    without_surrogates,
)
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
        type=click.File("rb"),
        help="Read the prompt from a file ('-' for stdin).",
    )(fn)
    return click.argument("prompt", required=False)(fn)


def read_prompt(prompt: str | None, path: Any, max_bytes: int) -> str:
    """The prompt text; exactly one source must be given, and it must not be empty.

    Files and stdin are read as bytes, at most `max_bytes` of them (``input.max_bytes``),
    and decoded as UTF-8 with replacement characters; so is an argument that was not UTF-8.
    Binary input (NUL bytes near its start, as `devpulse scan` tells) is a usage error.
    """
    if (prompt is None) == (path is None):
        raise click.UsageError("give exactly one of PROMPT, '-' or --file F")
    if path is not None:
        name = str(getattr(path, "name", "--file"))
        text = as_text(read_bounded(path, max_bytes, "stdin" if name == "<stdin>" else name))
    elif prompt == "-":
        text = read_stdin(max_bytes)
    else:
        text = without_surrogates(str(prompt))
    if not text.strip():
        raise click.UsageError("empty prompt")
    if binary_reason(text[:PROBE_BYTES].encode("utf-8", "surrogatepass")) is not None:
        # an image or an archive read as text: noise, to either side
        raise click.UsageError(
            f"the prompt is binary (NUL bytes in its first {PROBE_BYTES // 1024} KB): give text"
        )
    return text
