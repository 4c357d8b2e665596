"""Failover: attempts and wall time per fault scenario, the cost of an open circuit, and the
time from a 529 to the first local token.

The cloud is the fault-injecting Messages API server in tests/rig/ (real anthropic SDK),
the fallback the real llama-server rig. Targets: with the circuit open, routing to local
adds < 5 ms over calling local directly; first 529 to first local token < 1.5 s.

Run: `python bench/failover.py` (needs the rig: tests/rig/setup.sh).
"""

from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import httpx
import structlog

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


def main() -> None:
    warnings.simplefilter("ignore", DeprecationWarning)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
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
                attempts = router.ledger.recent_attempts()
                cloud = sum(a["side"] == "cloud" for a in attempts)
                print(
                    f"  {'+'.join(script):<28} {side:<12} {cloud:>5} "
                    f"{len(attempts) - cloud:>5} {wall:>7.2f}"
                )

        with FaultServer(["529"]) as fault:
            router = router_for(fault, local, tmp)
            start = time.monotonic()
            first = None
            for chunk in router.stream(hard()):
                if chunk.text:
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
            }
            direct, routed = [], []
            for _ in range(30):
                t = time.perf_counter()
                client.post(f"{local.base_url}/v1/chat/completions", json=body).json()
                direct.append(time.perf_counter() - t)
                t = time.perf_counter()
                router.invoke(hard())
                routed.append(time.perf_counter() - t)
            added = (statistics.median(routed) - statistics.median(direct)) * 1000
            print(
                f"circuit open, routed to local vs local direct: +{added:.2f} ms median "
                f"(target < 5 ms; cloud requests during this: {len(fault.bodies)})"
            )


if __name__ == "__main__":
    main()
