"""The bundled plugins, each built from the config, in the order they register."""

from __future__ import annotations

from typing import Any

from devpulse.core.config import Config
from devpulse.plugins.babysit.plugin import BabysitPlugin
from devpulse.plugins.backends import BundledKinds
from devpulse.plugins.failover.plugin import Failover
from devpulse.plugins.preflight.memory import every_probe
from devpulse.plugins.preflight.plugin import MemoryPreflight
from devpulse.plugins.preflight.probes import AppleProbe, HostProbe, NvidiaProbe
from devpulse.plugins.privacy import PrivacyClassifier
from devpulse.plugins.routing_table import RoutingTable
from devpulse.plugins.task_classifier import TaskClassifier


def bundled_plugins(config: Config, hook: Any, *, eager: bool = True) -> list[tuple[str, object]]:
    """The bundled plugins, each with the name it registers under.

    `hook` is the plugin manager's hook relay: the plugins that act on memory call every
    `probe_memory`, `loaded_models` and `unload_model` implementation (bundled or
    installed) through it at call time. `eager=False` leaves the privacy scanner's compile
    to the first request (`make_plugin_manager`).
    """
    plugins: list[tuple[str, object]] = [
        ("devpulse.task_classifier", TaskClassifier(config.classify, config.policy)),
        ("devpulse.routing_table", RoutingTable(config)),
        ("devpulse.probe.host", HostProbe(config.preflight.reserve_mb)),
        ("devpulse.probe.nvidia", NvidiaProbe()),
        ("devpulse.probe.apple", AppleProbe()),
        ("devpulse.preflight", MemoryPreflight(config, every_probe(hook.probe_memory), hook)),
        ("devpulse.babysit", BabysitPlugin(config, hook)),
    ]
    if config.privacy.classifier:
        plugins.append(("devpulse.privacy", PrivacyClassifier(config.privacy, eager=eager)))
    plugins.append(("devpulse.failover", Failover(config)))
    plugins.append(("devpulse.backend_kinds", BundledKinds()))
    return plugins
