"""What the router adds to a request: the same prompt sent directly with the anthropic SDK
and through Router.invoke (classify, route, preflight, privacy check, dispatch, ledger row),
interleaved, against the real llama-server rig. Target: < 2 ms added, < 1.05x median wall.

Run: `python bench/dispatch_overhead.py [--rounds N]` (needs the rig: tests/rig/setup.sh).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anthropic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devpulse import Request, Router, TaskClass, config_from_mapping, make_plugin_manager
from tests.rig.llama_server import LlamaServer, find_rig

PROMPT = "Summarize in five words: the nightly build passed and the release is on schedule."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=60)
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
            client.messages.create(
                model="gemma-3-270m", max_tokens=8, messages=[{"role": "user", "content": PROMPT}]
            )

        def direct_stream() -> None:
            with client.messages.stream(
                model="gemma-3-270m", max_tokens=8, messages=[{"role": "user", "content": PROMPT}]
            ) as events:
                events.get_final_message()

        inside: list[float] = []

        def routed() -> None:
            response = router.invoke(request)
            inside.append(response.latency_s * 1000)  # time spent in the backend call

        arms = (("direct", direct), ("direct_stream", direct_stream), ("routed", routed))
        for _, fn in arms * 2:  # warm every path and the server's prompt cache
            fn()
        times: dict[str, list[float]] = {name: [] for name, _ in arms}
        for i in range(args.rounds * len(arms)):
            name, fn = arms[i % len(arms)]
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
    d, r = statistics.median(times["direct"]), statistics.median(times["routed"])
    ds = statistics.median(times["direct_stream"])
    print(
        f"dispatch overhead against llama-server (Gemma 3 270M, {args.rounds} rounds each, "
        "interleaved)"
    )
    print(f"  direct anthropic SDK: median {d:.2f} ms")
    print(f"  direct SDK, streamed: median {ds:.2f} ms (what DevPulse does underneath)")
    print(f"  Router.invoke:        median {r:.2f} ms")
    print(
        f"  added: {r - d:+.2f} ms median, ratio {r / d:.3f}x "
        f"(targets < 2 ms and < 1.05x: {'met' if r - d < 2 and r / d < 1.05 else 'MISSED'})"
    )
    print(f"  vs the streamed SDK call: {r - ds:+.2f} ms median, ratio {r / ds:.3f}x")
    print(
        f"  of which routing alone (classify+route+preflight): "
        f"{statistics.median(route_only):.3f} ms median"
    )
    print(
        f"  the router's own time per request (invoke wall minus the backend call: routing,"
        f" privacy check, ledger row): {statistics.median(own):.2f} ms median, "
        f"p90 {sorted(own)[int(len(own) * 0.9)]:.2f} ms"
    )


if __name__ == "__main__":
    main()
