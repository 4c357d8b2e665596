"""Counting the scanner's searches: how a test shows that an input is read a bounded
number of times, without timing it."""

from __future__ import annotations

from typing import Any

import pytest

from devpulse.plugins.privacy import scanner as scanner_module


def counted_searches(monkeypatch: pytest.MonkeyPatch, rule_id: str | None = None) -> list[None]:
    """A list that grows by one for each search the scanner's rules make from now on (the
    rule `rule_id`'s alone, if given: the packaged rules that run on every text search it
    too)."""
    calls: list[None] = []
    search = scanner_module._search

    def counted(*args: Any) -> Any:
        if rule_id is None or args[0].id == rule_id:
            calls.append(None)
        return search(*args)

    monkeypatch.setattr(scanner_module, "_search", counted)
    return calls
