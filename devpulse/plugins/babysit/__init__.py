"""Babysit: keep local memory free by unloading idle models (a watchdog and auto-clean)."""

from devpulse.plugins.babysit.plugin import BabysitPlugin
from devpulse.plugins.babysit.watchdog import Babysitter, Unloaded, Unloader

__all__ = ["BabysitPlugin", "Babysitter", "Unloaded", "Unloader"]
