"""Failover: attempts and wall time per fault scenario, the cost of an open circuit, the
time from a 529 to the first local token, and what the time budget and the stall limit bound.

The cloud is the fault-injecting Messages API server in tests/rig/ (real anthropic SDK),
the fallback the real llama-server rig. Targets: silence, a slow first token and a stall are
left within 0.5 s of cloud_timeout_s (10 s) plus the local answer; with the circuit open,
routing to local adds < 5 ms over calling local directly; first 529 to first local token
< 1.5 s; budget_s = 2 ends a request by about 2.5 s whatever both sides do; a local server
that stalls mid-answer is left at stall_timeout_s, not after local_timeout_s (120 s).

Run: `python bench/failover.py` (needs the rig: tests/rig/setup.sh).
"""

from __future__ import annotations

import logging
import sqlite3
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devpulse import Request, Router, TaskClass, config_from_mapping, make_plugin_manager
from tests.rig.fault_server import FaultServer, hybrid_config
from tests.rig.llama_server import LlamaServer, find_rig

SCENARIOS = [
    ["ok"],
    ["429", "ok"],
    ["429_no_retry_after"],
    ["429_spend"],
    ["529"],
    ["500", "ok"],
    ["503"],
    ["reset", "ok"],
    ["silence"],
    ["slow_first_token"],
    ["cut", "ok"],
    ["stall"],
    ["malformed", "ok"],
    ["overloaded_event"],
    ["no_stop", "ok"],
    ["400_context"],
    ["400_policy"],
]


def router_for(fault: FaultServer, local: LlamaServer, tmp: str, **failover: object) -> Router:
    path = f"{tmp}/{time.monotonic_ns()}.sqlite3"
    config = config_from_mapping(hybrid_config(fault, local.base_url, path, **failover))
    return Router(config, plugin_manager=make_plugin_manager(config, entry_points=False))


def hard() -> Request:
    return Request.from_prompt("Design a multi-step plan.", task=TaskClass.REASONING, max_tokens=6)


def sides(router: Router) -> list[str]:
    """The side of each attempt the router's ledger recorded."""
    assert router.ledger is not None
    with sqlite3.connect(router.ledger.path) as db:
        return [side for (side,) in db.execute("SELECT side FROM attempts ORDER BY rowid")]


def bounds(local: LlamaServer, tmp: str) -> None:
    """What budget_s and the stall limit bound, whatever the servers do."""
    cases = [("silence", "stall"), ("stall", "slow_first_token"), ("slow_first_token", "stall")]
    for cloud, near in cases:
        with FaultServer([cloud], hang_s=30) as far, FaultServer([near], hang_s=30) as nearby:
            config = hybrid_config(far, nearby.base_url, f"{tmp}/b.sqlite3", budget_s=2.0)
            router = Router(
                config_from_mapping(config),
                plugin_manager=make_plugin_manager(config_from_mapping(config), entry_points=False),
            )
            start = time.monotonic()
            try:
                router.invoke(hard())
                how = "answered"
            except Exception as exc:
                how = type(exc).__name__
            print(
                f"budget_s = 2, cloud {cloud}, local {near}: {how} after "
                f"{time.monotonic() - start:.2f} s (target about 2.5 s)"
            )
    with FaultServer(["stall"], hang_s=30) as nearby:
        config = hybrid_config(nearby, nearby.base_url, f"{tmp}/s.sqlite3", enabled=False)
        config["local"] = {"backend": "llama_server", "model": "m"}
        router = Router(
            config_from_mapping(config),
            plugin_manager=make_plugin_manager(config_from_mapping(config), entry_points=False),
        )
        start = time.monotonic()
        try:
            router.invoke(Request.from_prompt("x", task=TaskClass.DRAFTING))
            how = "answered"
        except Exception as exc:
            how = type(exc).__name__
        print(
            f"local server stalls mid-answer (stall_timeout_s = 10, local_timeout_s = 120): "
            f"{how} after {time.monotonic() - start:.2f} s"
        )


def main() -> None:
    warnings.simplefilter("ignore", DeprecationWarning)
    logging.getLogger("devpulse").setLevel(logging.ERROR)
    rig, missing = find_rig()
    if rig is None:
        sys.exit(f"the rig is not installed ({missing}); run tests/rig/setup.sh")
    with LlamaServer.single_model(rig, slots=1) as local, tempfile.TemporaryDirectory() as tmp:
        print("per scenario, default limits (cloud_timeout_s = 10):")
        print(f"  {'scenario':<28} {'answered by':<12} {'cloud':>5} {'local':>5} {'wall s':>7}")
        for script in SCENARIOS:
            with FaultServer(script, hang_s=30) as fault:
                router = router_for(fault, local, tmp)
                start = time.monotonic()
                try:
                    side = router.invoke(hard()).side.value
                except Exception as exc:
                    side = f"error:{type(exc).__name__}"
                wall = time.monotonic() - start
                attempts = sides(router)
                cloud = attempts.count("cloud")
                print(
                    f"  {'+'.join(script):<28} {side:<12} {cloud:>5} "
                    f"{len(attempts) - cloud:>5} {wall:>7.2f}"
                )

        with FaultServer(["529"]) as fault:
            router = router_for(fault, local, tmp)
            start = time.monotonic()
            first = None
            for chunk in router.stream(hard()):
                if chunk.type == "text_delta":
                    first = time.monotonic() - start
                    break
            print(f"first 529 to first local token: {first:.3f} s (target < 1.5 s)")

            for _ in range(3):  # open the circuit
                router.invoke(hard())
            client = httpx.Client(timeout=30)
            body = {
                "model": "gemma-3-270m",
                "max_tokens": 6,
                "messages": [{"role": "user", "content": "Design a multi-step plan."}],
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            direct, routed = [], []
            for _ in range(30):
                t = time.perf_counter()  # streamed, as the router sends it
                with client.stream(
                    "POST", f"{local.base_url}/v1/chat/completions", json=body
                ) as reply:
                    for line in reply.iter_lines():
                        if line == "data: [DONE]":
                            break
                direct.append(time.perf_counter() - t)
                t = time.perf_counter()
                router.invoke(hard())
                routed.append(time.perf_counter() - t)
            added = (statistics.median(routed) - statistics.median(direct)) * 1000
            print(
                f"circuit open, routed to local vs local direct: +{added:.2f} ms median "
                f"(target < 5 ms; cloud requests during this: {len(fault.bodies)})"
            )
        bounds(local, tmp)


if __name__ == "__main__":
    main()
