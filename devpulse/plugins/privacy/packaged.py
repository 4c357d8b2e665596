"""The packaged `rules.toml`, read and parsed once: the rules and the documented decisions
(`published_keys`, `[not_personal]`) that the checks consult all come from it."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Any


@cache
def rules_file() -> dict[str, Any]:
    """The parsed file; callers read it and never change it."""
    text = resources.files(__package__).joinpath("rules.toml").read_text("utf-8")
    return tomllib.loads(text)
