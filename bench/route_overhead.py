"""How long Router.route() takes with the bundled plugins: classify + route + preflight.

Routing does no I/O, so this is pure per-request overhead. Target: median under 0.2 ms for a
2 KB prompt. Run: `python bench/route_overhead.py [--rounds N]`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

from devpulse import Request, Router, config_from_mapping, make_plugin_manager

PARAGRAPH = (
    "The release adds streaming retries, fixes a race in the session cache, and renames the "
    "`fetch_all` helper to `fetch_pages`. Configuration keys under [server] are unchanged. "
)
TARGET_MEDIAN_MS_2KB = 0.2


def prompt_of(size: int) -> str:
    body = (PARAGRAPH * (size // len(PARAGRAPH) + 1))[: size - 40]
    return "Summarize this changelog for users:\n\n" + body


def measure(router: Router, request: Request, rounds: int) -> dict[str, float]:
    for _ in range(min(200, rounds)):  # warm caches and the regex engine
        router.route(request)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        router.route(request)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    samples.sort()
    return {
        "median_ms": statistics.median(samples),
        "p99_ms": samples[int(len(samples) * 0.99) - 1],
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    config = config_from_mapping({})
    router = Router(config, plugin_manager=make_plugin_manager(config, entry_points=False))
    results = {}
    for label, size in (("2KB", 2 * 1024), ("100KB", 100 * 1024)):
        request = Request.from_prompt(prompt_of(size))
        results[label] = measure(
            router, request, args.rounds if size < 10_000 else args.rounds // 5
        )
    if args.json:
        print(json.dumps(results))
        return
    print(
        f"Router.route() with the bundled plugins on {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}"
    )
    for label, r in results.items():
        print(
            f"  {label:>6}: median {r['median_ms']:.4f} ms   p99 {r['p99_ms']:.4f} ms   "
            f"({r['rounds']} rounds)"
        )
    verdict = "met" if results["2KB"]["median_ms"] < TARGET_MEDIAN_MS_2KB else "MISSED"
    print(f"  target: 2KB median < {TARGET_MEDIAN_MS_2KB} ms -> {verdict}")


if __name__ == "__main__":
    main()
