"""What the router adds to a request: the same prompt sent directly with the anthropic SDK
and through Router.invoke (classify, route, preflight, privacy check, dispatch, ledger row),
interleaved, against the real llama-server rig. Target: < 2 ms added, < 1.05x median wall.

The router's own time is then measured apart from the machine's: the same invoke against an
in-process backend that answers at once, back to back (warm CPU caches), right after a
direct call to the rig's model (whose run on the same cores leaves them cold), and right
after 200 ms of doing nothing. The gap between the first and the others is what a pause
costs the router's code, not what the code does. Last, back to back with every thread of
the process pinned to one CPU: the same code and hand-offs between the caller, the attempt's
worker and the ledger's writer, with no thread woken on another core (on a 2-vCPU VM that
waking is about a third of the router's own time).

What the router adds end to end is read from paired rounds: each round runs the three arms
once, in a rotating order, and the figure is the median of the rounds' differences, with a
90% bootstrap interval. The model's own time varies by a few ms from call to call; a
difference of two medians of 60 calls each moved between +0.3 and +5.3 ms from run to run of
the same code on this 2-vCPU machine.

Run: `python bench/dispatch_overhead.py [--rounds N]` (needs the rig: tests/rig/setup.sh;
300 rounds by default, about five minutes on a 2-vCPU machine).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devpulse import Request, Router, TaskClass, config_from_mapping, make_plugin_manager
from devpulse.core.kinds import BackendSpec
from devpulse.core.types import Chunk, Decision, Response, replay
from devpulse.hookspecs import hookimpl
from devpulse.plugins.backends.anthropic_backend import _reused_and_closed as reused_and_closed
from tests.rig.llama_server import LlamaServer, find_rig

PROMPT = "Summarize in five words: the nightly build passed and the release is on schedule."


class Instant:
    """A backend kind with no I/O: the rig's answer shape, at once."""

    def __init__(self, spec: BackendSpec) -> None:
        self.name, self.side = spec.name, spec.config.side

    def complete(self, request: Request, decision: Decision) -> Response:
        return Response("Build passed; release on schedule.", decision.model, self.name, self.side)

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        return replay(self.complete(request, decision))


class InstantKind:
    @hookimpl
    def register_backend_kinds(self, register: Any) -> None:
        register("instant", Instant)


def p50_p90(values: list[float]) -> str:
    p90 = sorted(values)[int(len(values) * 0.9)]
    return f"p50 {statistics.median(values):.2f} ms, p90 {p90:.2f} ms"


def once_more_if_closed(call: Callable[[], object]) -> None:
    """`call`, sent once more if the server had closed the kept-alive connection it went out
    on, as the router's Anthropic backend does (`_open`): llama-server closes some."""
    try:
        call()
    except anthropic.APIConnectionError as exc:
        if not reused_and_closed(exc):
            raise
        call()


def verdict(whole_interval: bool, median: bool) -> str:
    """A target is met when the whole interval meets it, not the median alone."""
    if whole_interval:
        return "met"
    return "not shown: the median meets it, the interval does not" if median else "MISSED"


def paired(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """The median of the rounds' differences a - b, and its 90% bootstrap interval."""
    differences = [x - y for x, y in zip(a, b, strict=True)]
    rng = random.Random(0)
    medians = sorted(
        statistics.median(rng.choices(differences, k=len(differences))) for _ in range(1000)
    )
    return statistics.median(differences), medians[50], medians[949]


def instant_arm(
    request: Request, tmp: str, rounds: int, model_call: Callable[[], None]
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Invoke walls (ms) against the in-process backend: back to back, each right after
    `model_call` has run the rig's model, each right after 200 ms asleep, and back to back
    on one CPU."""
    config = config_from_mapping(
        {
            "local": {"backend": "instant", "model": "gemma-3-270m"},
            "backends": {"instant": {"side": "local", "kind": "instant"}},
            "ledger": {"path": f"{tmp}/instant.sqlite3"},
        }
    )
    manager = make_plugin_manager(config, entry_points=False, extra=[InstantKind()])
    router = Router(config, plugin_manager=manager)

    def timed() -> float:
        start = time.perf_counter()
        router.invoke(request)
        return (time.perf_counter() - start) * 1000

    for _ in range(20):
        timed()
    warm, after_model, after_idle = [], [], []
    for _ in range(rounds):
        warm.append(timed())
        model_call()  # the model runs on the same cores
        after_model.append(timed())
        time.sleep(0.2)  # nothing runs: what the pause alone costs
        after_idle.append(timed())
    return warm, after_model, after_idle, one_cpu(timed, rounds * 3)


def one_cpu(timed: Callable[[], float], rounds: int) -> list[float]:
    """Back-to-back walls with this process pinned to one CPU (Linux), then unpinned: the
    same hand-offs between the caller, the attempt's worker and the ledger's writer, without
    waking a thread on another core. Empty where affinity cannot be set."""
    if not hasattr(os, "sched_setaffinity") or not os.path.isdir("/proc/self/task"):
        return []
    cpus = os.sched_getaffinity(0)

    def pin(to: set[int]) -> None:  # each thread has its own mask: the workers are running
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(ProcessLookupError):  # a thread that just ended
                os.sched_setaffinity(int(tid), to)

    pin({min(cpus)})
    try:
        for _ in range(20):
            timed()
        return [timed() for _ in range(rounds)]
    finally:
        pin(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    rig, missing = find_rig()
    if rig is None:
        sys.exit(f"the rig is not installed ({missing}); run tests/rig/setup.sh")
    with LlamaServer.single_model(rig, slots=1) as server, tempfile.TemporaryDirectory() as tmp:
        config = config_from_mapping(
            {
                "local": {"backend": "rig", "model": "gemma-3-270m"},
                "backends": {
                    "rig": {"side": "local", "kind": "anthropic", "base_url": server.base_url}
                },
                "ledger": {"path": f"{tmp}/ledger.sqlite3"},
            }
        )
        router = Router(config, plugin_manager=make_plugin_manager(config, entry_points=False))
        client = anthropic.Anthropic(base_url=server.base_url, api_key="rig", max_retries=0)
        request = Request.from_prompt(PROMPT, task=TaskClass.DRAFTING, max_tokens=8)

        def direct() -> None:
            once_more_if_closed(
                lambda: client.messages.create(
                    model="gemma-3-270m",
                    max_tokens=8,
                    messages=[{"role": "user", "content": PROMPT}],
                )
            )

        def direct_stream() -> None:
            def call() -> None:
                with client.messages.stream(
                    model="gemma-3-270m",
                    max_tokens=8,
                    messages=[{"role": "user", "content": PROMPT}],
                ) as events:
                    events.get_final_message()

            once_more_if_closed(call)

        inside: list[float] = []

        def routed() -> None:
            response = router.invoke(request)
            inside.append(response.latency_s * 1000)  # time spent in the backend call

        arms = (("direct", direct), ("direct_stream", direct_stream), ("routed", routed))
        for _, fn in arms * 2:  # warm every path and the server's prompt cache
            fn()
        times: dict[str, list[float]] = {name: [] for name, _ in arms}
        for i in range(args.rounds):  # one call of each a round, each arm first in turn
            for name, fn in arms[i % len(arms) :] + arms[: i % len(arms)]:
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) * 1000)
        inside.clear()
        walls: list[float] = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            routed()
            walls.append((time.perf_counter() - start) * 1000)
        own = [w - i for w, i in zip(walls, inside, strict=True)]
        route_only = []
        for _ in range(500):
            start = time.perf_counter()
            router.route(request)
            route_only.append((time.perf_counter() - start) * 1000)
        instant = instant_arm(request, tmp, args.rounds, direct)
    report(args.rounds, times, own, route_only, *instant)


def report(
    rounds: int,
    times: dict[str, list[float]],
    own: list[float],
    route_only: list[float],
    warm: list[float],
    after_model: list[float],
    after_idle: list[float],
    pinned: list[float],
) -> None:
    d, r = statistics.median(times["direct"]), statistics.median(times["routed"])
    ds = statistics.median(times["direct_stream"])
    print(
        f"dispatch overhead against llama-server (Gemma 3 270M, {rounds} rounds of the three"
        " calls, in turn)"
    )
    print(f"  direct anthropic SDK: median {d:.2f} ms")
    print(f"  direct SDK, streamed: median {ds:.2f} ms (what DevPulse does underneath)")
    print(f"  Router.invoke:        median {r:.2f} ms")
    added, low, high = paired(times["routed"], times["direct"])
    print(
        f"  added: {added:+.2f} ms median of the rounds' differences (90% interval {low:+.2f} to"
        f" {high:+.2f}), ratio of medians {r / d:.3f}x (targets < 2 ms and < 1.05x:"
        f" {verdict(high < 2 and r / d < 1.05, added < 2 and r / d < 1.05)})"
    )
    added, low, high = paired(times["routed"], times["direct_stream"])
    print(
        f"  vs the streamed SDK call: {added:+.2f} ms (90% interval {low:+.2f} to {high:+.2f}),"
        f" ratio of medians {r / ds:.3f}x (target <= +2 ms: {verdict(high <= 2, added <= 2)})"
    )
    print(
        f"  of which routing alone (classify+route+preflight): "
        f"{statistics.median(route_only):.3f} ms median"
    )
    print(
        "  the router's own time per request (invoke wall minus the backend call: routing,"
        f" privacy check, ledger row): {p50_p90(own)}"
    )
    print("  the same invoke against an in-process backend that answers at once:")
    print(f"    back to back (warm caches):           {p50_p90(warm)}")
    print(f"    right after a model call on the rig:  {p50_p90(after_model)}")
    print(f"    right after 200 ms idle:              {p50_p90(after_idle)}")
    if pinned:
        print(f"    back to back, pinned to one CPU:      {p50_p90(pinned)}")
    gap = statistics.median(after_model) - statistics.median(warm)
    idle = statistics.median(after_idle) - statistics.median(warm)
    print(
        f"    so a model call adds {gap:+.2f} ms to the router's own time and a pause alone"
        f" {idle:+.2f} ms, of the same code"
    )
    if pinned:
        cores = statistics.median(warm) - statistics.median(pinned)
        print(
            f"    and waking the worker and writer threads on other cores {cores:+.2f} ms"
            " (back to back, less the same on one CPU)"
        )


if __name__ == "__main__":
    main()
