"""The example plugin, installed for real and found through its entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.examples.installed import ROOT, devpulse, install

PLUGIN = ROOT / "examples" / "custom_policy_plugin"
REASONING = (
    "A train travels 180 km in 2 hours, then 240 km in 3 hours. H"
    "ow many km per hour did it average over the whole trip?"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin built and installed into a folder of its own, as pip would install it."""
    target = install(PLUGIN, tmp_path_factory.mktemp("site"))
    assert list(target.glob("devpulse_custom_policy-*.dist-info"))
    return target


def test_the_installed_plugin_preempts_the_routing_table(site: Path, tmp_path: Path) -> None:
    result = devpulse(site, tmp_path, "route", "--json", REASONING)
    payload = json.loads(result.stdout)
    assert payload["side"] == "local"  # the table alone says cloud for reasoning
    assert payload["task_class"] == "reasoning"
    assert payload["reasons"][0].startswith("custom_policy:")


def test_it_is_listed_with_its_distribution(site: Path, tmp_path: Path) -> None:
    plugins = json.loads(devpulse(site, tmp_path, "plugins", "--json").stdout)["plugins"]
    (entry,) = [p for p in plugins if p["name"] == "custom_policy"]
    assert entry["source"] == "installed"
    assert entry["distribution"] == "devpulse-custom-policy"
    assert entry["hooks"] == ["configure", "route"]


def test_load_plugins_env_disables_or_selects_it(site: Path, tmp_path: Path) -> None:
    off = devpulse(site, tmp_path, "route", REASONING, DEVPULSE_LOAD_PLUGINS="")
    assert off.stdout == "cloud\n"
    on = devpulse(
        site, tmp_path, "route", REASONING, DEVPULSE_LOAD_PLUGINS="devpulse-custom-policy"
    )
    assert on.stdout == "local\n"
    missing = devpulse(site, tmp_path, "route", "x", DEVPULSE_LOAD_PLUGINS="no-such-plugin")
    assert missing.returncode == 2
    assert "no installed distribution 'no-such-plugin'" in missing.stderr


def test_its_settings_come_from_the_config_file(site: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[plugins.custom_policy]\nmax_local_tokens = 5\n")
    assert devpulse(site, tmp_path, "--config", str(config), "route", REASONING).stdout == "cloud\n"
    config.write_text("[plugins.custom_policy]\nmax_local_tokens = 'lots'\n")
    bad = devpulse(site, tmp_path, "--config", str(config), "route", REASONING)
    assert bad.returncode == 2
    assert "plugins.custom_policy.max_local_tokens" in bad.stderr
    assert bad.stderr.count("\n") == 1
