"""DevPulse's own behaviour, written as ordinary plugins and registered before any other."""

from __future__ import annotations

from devpulse.core.config import Config
from devpulse.plugins.privacy import PrivacyClassifier
from devpulse.plugins.routing_table import RoutingTable
from devpulse.plugins.task_classifier import TaskClassifier


def bundled_plugins(config: Config) -> list[tuple[str, object]]:
    """The bundled plugins, each with the name it registers under."""
    plugins: list[tuple[str, object]] = [
        ("devpulse.task_classifier", TaskClassifier(config.classify)),
        ("devpulse.routing_table", RoutingTable(config)),
    ]
    if config.privacy.classifier:
        plugins.append(("devpulse.privacy", PrivacyClassifier(config.privacy)))
    return plugins
