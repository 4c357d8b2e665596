"""`devpulse babysit`: the watchdog on the command line, stopped cleanly by SIGINT or SIGTERM."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import click

from devpulse.commands.inputs import MAX_COUNT, MAX_SECONDS, Finite
from devpulse.core.config import Config
from devpulse.plugins.babysit.watchdog import Babysitter, Event

Factory = Callable[..., Babysitter]


def babysit_command(config: Config, hook: Any, factory: Factory = Babysitter) -> click.Command:
    defaults = config.babysit

    @click.command("babysit")
    @click.option(
        "--target-free-mb",
        type=click.IntRange(0, MAX_COUNT),
        default=defaults.target_free_mb,
        show_default=True,
        help="Keep at least this much memory free (babysit.target_free_mb).",
    )
    @click.option(
        "--interval",
        "interval_s",
        type=Finite(0.05, MAX_SECONDS),
        default=defaults.interval_s,
        show_default=True,
        help="Seconds between samples (babysit.interval_s).",
    )
    @click.option(
        "--pin",
        "pins",
        multiple=True,
        metavar="MODEL",
        help="Never unload MODEL (or BACKEND/MODEL); repeatable; adds to babysit.pins.",
    )
    @click.option("--once", is_flag=True, help="Take one sample, act on it, and exit.")
    @click.option("--dry-run", is_flag=True, help="Say what would be unloaded; unload nothing.")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per line per event.")
    def babysit(
        target_free_mb: int,
        interval_s: float,
        pins: tuple[str, ...],
        once: bool,
        dry_run: bool,
        as_json: bool,
    ) -> None:
        """Keep free memory above a target by unloading idle local models.

        Under pressure (free memory below the target on two samples in a row; with --once,
        on one) it unloads idle models, least recently used first, never one serving a
        request or a pinned one, until free memory is back above the target plus
        babysit.hysteresis_mb; it confirms each unload, and names the processes holding the
        most memory when unloading is not enough. It reports and never kills.

        Exit codes: 0 stopped cleanly (SIGINT, SIGTERM, or --once), 1 the output was cut
        (stdout closed or not writable, as > /dev/full; the check in progress still
        finishes), 2 usage or config error.
        """
        show = _Output(_json_lines if as_json else _StatusLine(target_free_mb))
        sitter = factory(
            config,
            hook,
            target_free_mb=target_free_mb,
            interval_s=interval_s,
            pins=(*defaults.pins, *pins),
            dry_run=dry_run,
            on_event=show,
        )
        show.stop = sitter.finish
        with _stopped_by_signals(sitter.stop):
            sitter.run(once=once)
        if show.closed is not None:
            # exit 1 with one line: "the output was cut" (a closed pipe), or the system's
            # reason ("No space left on device"), as every other command says it
            raise show.closed
        if not as_json and sys.stdout.isatty():
            click.echo()  # leave the live line

    return babysit


class _Output:
    """Shows each event until stdout closes (``babysit --json | head -1``); then it ends the
    watch once the check in progress is done, so the unloads it decided on still happen."""

    def __init__(self, show: Callable[[Event], None]) -> None:
        self.show = show
        self.stop: Callable[[], None] = lambda: None
        self.closed: OSError | None = None

    def __call__(self, event: Event) -> None:
        if self.closed is not None:
            return
        try:
            self.show(event)
        except OSError as exc:  # a closed pipe (EPIPE), a full disk (ENOSPC, > /dev/full)
            self.closed = exc
            self.stop()


def _json_lines(event: Event) -> None:
    click.echo(json.dumps(event, ensure_ascii=False, default=str))
    sys.stdout.flush()


class _StatusLine:
    """One live line on a terminal (free vs target, loaded models, last action); elsewhere
    one line per action."""

    def __init__(self, target_mb: int) -> None:
        self.target_mb = target_mb
        self.loaded: list[str] = []
        self.action = "watching"
        self.tty = sys.stdout.isatty()

    def __call__(self, event: Event) -> None:
        kind = event["event"]
        if kind == "sample":
            self.loaded = [f"{m['model']} {m['size_mb']}MB" for m in event.get("loaded", [])]
            self.free = event["free_mb"]
        elif kind in ("unload", "unload_confirmed", "unload_stuck", "host_unreachable", "hog"):
            self.action = _describe(event)
        elif kind == "pressure":
            self.free = event["free_mb"]
            self.action = f"pressure: {event['free_mb']} MB free"
        if not self.tty and kind in ("start", "sample", "stop"):
            return  # a log, not a terminal: one line per action
        free = getattr(self, "free", "?")
        line = (
            f"{event['ts'][11:19]} free {free}/{self.target_mb} MB | "
            f"loaded: {', '.join(self.loaded) or 'none'} | {self.action}"
        )
        if self.tty:
            click.echo("\r\x1b[2K" + line, nl=False)
        else:
            click.echo(line)


def _describe(event: Event) -> str:
    kind, model = event["event"], f"{event.get('backend')}/{event.get('model')}"
    if kind == "unload":
        return f"unloading {model}" + (" (dry run)" if event.get("dry_run") else "")
    if kind == "unload_confirmed":
        return f"unloaded {model}: {event['freed_mb']} MB freed"
    if kind == "unload_stuck":
        return f"unload of {model} stuck: {event['reason']}"
    if kind == "host_unreachable":
        return f"{event['backend']} does not answer"
    vram = f", {event['vram_mb']} MB on {event['device']}" if "vram_mb" in event else ""
    return f"hog: pid {event['pid']} {event['name']} {event['rss_mb']} MB RAM{vram}"


@contextlib.contextmanager
def _stopped_by_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM end the loop cleanly (from the main thread; elsewhere, no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
