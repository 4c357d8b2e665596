"""docs/hooks.md documents every hook with its exact signature."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

import pytest

from devpulse import config_from_mapping, hookspecs
from devpulse.plugins.privacy import Scanner

HOOKS_DOC = Path(__file__).resolve().parents[1] / "docs" / "hooks.md"


def spec_names() -> list[str]:
    return sorted(
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "devpulse_spec")
    )


def spec_signature(name: str) -> str:
    fn = getattr(hookspecs, name)
    sig = inspect.signature(fn)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"def {name}({params}) -> {sig.return_annotation}"


def documented_sections(text: str) -> dict[str, str]:
    """Each `## name` section of the doc, keyed by name."""
    parts = re.split(r"^## (\w+)\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def documented_signature(section: str) -> str | None:
    match = re.search(r"```python\n(def .+?)\n```", section)
    return match.group(1).strip() if match else None


def check(text: str) -> list[str]:
    """Every problem with the doc: undocumented hooks, drifted signatures, missing contracts."""
    problems = []
    sections = documented_sections(text)
    for name in spec_names():
        section = sections.get(name)
        if section is None:
            problems.append(f"{name}: not documented")
            continue
        if documented_signature(section) != spec_signature(name):
            problems.append(
                f"{name}: documented {documented_signature(section)!r}, "
                f"spec is {spec_signature(name)!r}"
            )
        opts = getattr(hookspecs, name).devpulse_spec
        if opts.get("firstresult") and "Stops at first non-None result" not in " ".join(
            section.split()
        ):
            problems.append(f"{name}: firstresult hook without 'Stops at first non-None result'")
        if "**Returns**" not in section or section.count("```python") < 2:
            problems.append(f"{name}: needs a Returns line and an example")
    return problems


def test_the_five_pipeline_hooks_exist() -> None:
    assert {"classify", "route", "preflight", "dispatch", "on_failure"} <= set(spec_names())
    assert "register_commands" in spec_names()


def test_every_hook_is_documented_with_its_exact_signature() -> None:
    assert check(HOOKS_DOC.read_text()) == []


@pytest.mark.parametrize("hook", spec_names())
def test_the_doc_check_catches_a_removed_hook(hook: str) -> None:
    sections = documented_sections(HOOKS_DOC.read_text())
    pruned = "".join(f"## {n}\n{body}" for n, body in sections.items() if n != hook)
    assert f"{hook}: not documented" in check(pruned)


def test_the_doc_check_catches_a_drifted_signature() -> None:
    text = HOOKS_DOC.read_text().replace(
        "def route(request: Request, classification: Classification)",
        "def route(request: Request)",
    )
    assert any(p.startswith("route: documented") for p in check(text))


def test_every_spec_docstring_states_its_contract() -> None:
    for name in spec_names():
        fn = getattr(hookspecs, name)
        doc = inspect.getdoc(fn) or ""
        assert doc, name
        if fn.devpulse_spec.get("firstresult"):
            assert "Stops at first non-None result" in doc, name


def test_the_readme_config_examples_are_valid() -> None:
    readme = (HOOKS_DOC.parents[1] / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, flags=re.DOTALL)
    configs = [config_from_mapping(tomllib.loads(block)) for block in blocks]
    (config,) = [c for c in configs if c.privacy.internal_domains]  # the Configure example
    assert config.privacy.internal_domains == ("acme.internal", "acme-corp.com")
    assert Scanner(config.privacy).scan("ticket ACME-48213")[0].rule_id == "acme-ticket"
