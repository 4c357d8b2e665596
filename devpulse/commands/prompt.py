"""The prompt argument shared by `route` and `ask`: PROMPT, '-' for stdin, or --file F."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from devpulse.commands.inputs import (
    PROBE_BYTES,
    as_text,
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


# Of the characters of a prompt's start, more than this share that no text holds (bytes that
# are no UTF-8, control characters) make it binary: random bytes hold about 55%, a Latin-1
# line read as UTF-8 a few (`caf\xe9`, each accent one). NULs alone do not: `find -print0`,
# `git log -z` and a crash log padded with them are text with separators.
BINARY_SHARE = 0.3
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\0\x1b")  # and ESC, of a terminal's colours


def _binary(head: str) -> bool:
    """Whether `head`, a prompt's start, is mostly characters that no text holds."""
    odd = sum(c == "\ufffd" or (c < " " and c not in _TEXT_CONTROLS) for c in head)
    return odd > BINARY_SHARE * len(head)


def read_prompt(prompt: str | None, path: Any, max_bytes: int) -> str:
    """The prompt text; exactly one source must be given, and it must not be empty.

    Files and stdin are read as bytes, at most `max_bytes` of them (``input.max_bytes``),
    and decoded as UTF-8 with replacement characters; so is an argument that was not UTF-8.
    Binary input (mostly bytes that are no text, near its start) is a usage error.
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
    if _binary(text[:PROBE_BYTES]):  # an image or an archive read as text: noise, either side
        raise click.UsageError(
            f"the prompt is binary (bytes that are no text in its first {PROBE_BYTES // 1024}"
            " KB): give text"
        )
    return text
