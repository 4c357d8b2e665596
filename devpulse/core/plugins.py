"""Building a plugin manager: the bundled plugins first, then installed entry points."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from devpulse import hookspecs
from devpulse.core.config import Config, located
from devpulse.core.errors import ConfigError
from devpulse.core.kinds import Kinds, backend_plugins
from devpulse.plugins.bundled import bundled_plugins

ENTRY_POINT_GROUP = "devpulse"


@dataclass(frozen=True, slots=True)
class BrokenPlugin:
    """An installed plugin that failed to load: its entry point, its distribution, why."""

    entry_point: str
    distribution: str
    version: str
    error: str

    def describe(self) -> str:
        return (
            f"cannot load the installed devpulse plugin {self.entry_point!r} "
            f"(distribution {self.distribution} {self.version}): {self.error}"
        )


class PluginLoadError(ConfigError):
    """An installed plugin failed to load: which one, and how to leave it out."""

    def __init__(self, broken: BrokenPlugin) -> None:
        super().__init__(
            f"{broken.describe()}; fix or uninstall it, or name only the distributions to "
            "load in DEVPULSE_LOAD_PLUGINS (empty: none)"
        )
        self.broken = broken


def make_plugin_manager(
    config: Config,
    *,
    entry_points: bool = True,
    extra: Sequence[object] = (),
    broken: list[BrokenPlugin] | None = None,
    eager: bool = True,
) -> pluggy.PluginManager:
    """A fresh manager with the bundled plugins, then `extra`, then installed plugins.

    Plugins registered later run first, so an installed plugin wins any firstresult race
    against a bundled one. ``$DEVPULSE_LOAD_PLUGINS`` limits which installed distributions
    load (empty: none; else a comma-separated list of distribution names), and
    ``$DEVPULSE_TRACE_PLUGINS=1`` prints every hook call to stderr.

    An installed plugin that fails to load raises `PluginLoadError`, naming it. Only a
    caller that diagnoses (``devpulse plugins``, ``doctor``) passes a `broken` list: each
    such plugin is then appended there and left out. Routing never does: without an
    installed privacy or backend plugin, prompts could go elsewhere.

    `eager=False` builds what only requests use (the privacy scanner's compiled rules,
    about 0.2 s) at the first request rather than now: for the CLI, most of whose commands
    route nothing. A bad setting is a ConfigError now either way.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    try:  # the bundled plugins check their own tables (privacy patterns, rule ids)
        bundled = bundled_plugins(config, pm.hook, eager=eager)
    except ConfigError as exc:
        raise located(exc, config.source) from None
    for name, plugin in bundled:
        pm.register(plugin, name=name)
    for plugin in extra:
        pm.register(plugin)
    if entry_points:
        _load_entry_points(pm, os.environ.get("DEVPULSE_LOAD_PLUGINS"), broken)
    try:  # after the installed plugins: they may register the kinds the config names
        for name, plugin in backend_plugins(config, pm.hook):
            pm.register(plugin, name=name)
    except ConfigError as exc:
        if broken:  # a kind the config names may be the broken plugin's: say that first
            raise PluginLoadError(broken[0]) from None
        raise located(exc, config.source) from None
    pm.check_pending()
    if os.environ.get("DEVPULSE_TRACE_PLUGINS", "") not in ("", "0"):
        _trace_to_stderr(pm)
    try:
        pm.hook.configure.call_historic(kwargs={"config": config})
    except ConfigError as exc:
        raise located(exc, config.source) from None
    return pm


def _load_entry_points(
    pm: pluggy.PluginManager, allowed: str | None, broken: list[BrokenPlugin] | None
) -> None:
    if allowed is not None:
        wanted = {_normalize(n) for n in allowed.split(",") if n.strip()}
        found = set()
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = _normalize(ep.dist.name) if ep.dist else ""
            if dist in wanted:
                found.add(dist)
            else:
                pm.set_blocked(ep.name)
        missing = sorted(wanted - found)
        if missing:
            raise ConfigError(
                f"DEVPULSE_LOAD_PLUGINS: no installed distribution {missing[0]!r} "
                f"provides a {ENTRY_POINT_GROUP!r} entry point"
            )
    # One entry point at a time (in pluggy's order), so that a failure names its plugin.
    for installed in list(metadata.distributions()):
        for ep in installed.entry_points:
            if ep.group != ENTRY_POINT_GROUP or pm.get_plugin(ep.name) or pm.is_blocked(ep.name):
                continue
            try:
                pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=ep.name)
            except Exception as exc:  # a broken third-party plugin must not look like our crash
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                failed = BrokenPlugin(
                    ep.name, installed.metadata["Name"] or "?", installed.version or "?", reason
                )
                if broken is None:
                    raise PluginLoadError(failed) from exc
                broken.append(failed)
                pm.set_blocked(ep.name)  # left out, whatever part of it got in


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def _trace_to_stderr(pm: pluggy.PluginManager) -> None:
    """Print hook calls and results by type only: arguments may hold secrets, so never them."""

    def before(hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        names = ", ".join(pm.get_name(i.plugin) or "?" for i in impls)
        print(f"devpulse trace: {hook_name} -> [{names}]", file=sys.stderr)

    def after(outcome: Any, hook_name: str, impls: Sequence[Any], kwargs: Any) -> None:
        try:
            result = outcome.get_result()
            shown = type(result).__name__ if not isinstance(result, list) else f"{len(result)}"
        except BaseException as exc:
            shown = f"raised {type(exc).__name__}"
        print(f"devpulse trace: {hook_name} <- {shown}", file=sys.stderr)

    pm.add_hookcall_monitoring(before, after)


def plugin_listing(pm: pluggy.PluginManager) -> list[dict[str, Any]]:
    """Each registered plugin with its hooks and, for installed ones, its distribution."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # blocked
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or ())
        entry: dict[str, Any] = {"name": name, "hooks": hooks}
        dist = dists.get(id(plugin))
        if dist is not None:
            entry["source"] = "installed"
            entry["distribution"] = dist.project_name
            entry["version"] = dist.version
        else:
            entry["source"] = "bundled" if name.startswith("devpulse.") else "registered"
        if "register_backend_kinds" in hooks:
            entry["backend_kinds"] = _kinds_of(pm, plugin)
        out.append(entry)
    return out


def _kinds_of(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """The backend kinds `plugin` registers, asked of it alone."""
    kinds = Kinds()
    for impl in pm.hook.register_backend_kinds.get_hookimpls():
        if impl.plugin is plugin:
            impl.function(register=kinds)
    return sorted(kinds.factories)
