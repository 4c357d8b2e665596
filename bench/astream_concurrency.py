"""500 requests at once: `Router.astream` on one event loop against 500 threads on the sync
path (`Router.stream`), in the same run, against the rig's streaming server (the fault
server's "ok" answer over the OpenAI-compatible protocol, so the server is never the limit).

Prints, for each path: wall time, answers, ledger rows (lost and duplicated), and the
router's own time per request (the request's wall minus the backend's own call, as the
backend measured it) at p50 and p99. Then, fairly: the same calls with the raw async
HTTP client at the same concurrency, and through `Router.astream` again; the overhead is the
difference of their walls, and of the process CPU per request. Targets for astream: 0 lost,
0 duplicated, p50 <= 1 ms, p99 <= 5 ms. Run: `python bench/astream_concurrency.py [--requests N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devpulse import Request, Router, TaskClass, config_from_mapping, make_plugin_manager
from tests.rig.fault_server import FaultServer


def router_for(url: str, ledger: str) -> Router:
    config = config_from_mapping(
        {
            "backends": {"near": {"side": "local", "kind": "openai_compat", "base_url": url}},
            # A model named by its size: preflight asks the server nothing.
            "routing": {"drafting": {"side": "local", "backend": "near", "model": "100"}},
            "ledger": {"path": ledger},
            "failover": {"enabled": False},  # a failure shows as one, not as a fallback
        }
    )
    return Router(config, plugin_manager=make_plugin_manager(config, entry_points=False))


def request(i: int) -> Request:
    return Request.from_prompt(f"request {i}", task=TaskClass.DRAFTING, max_tokens=8)


async def one_async(router: Router, i: int) -> float:
    start = time.perf_counter()
    final = None
    async for chunk in router.astream(request(i)):
        final = chunk.response or final
    wall = time.perf_counter() - start
    assert final is not None
    return (wall - final.latency_s) * 1000


def one_sync(router: Router, i: int) -> float:
    start = time.perf_counter()
    final = None
    for chunk in router.stream(request(i)):
        final = chunk.response or final
    wall = time.perf_counter() - start
    assert final is not None
    return (wall - final.latency_s) * 1000


async def one_raw(client: object, url: str, i: int) -> float:
    """The same call with the raw async HTTP client (no router): the fair baseline."""
    start = time.perf_counter()
    body = {"model": "100", "max_tokens": 8, "stream": True}
    body["messages"] = [{"role": "user", "content": f"request {i}"}]
    async with client.stream("POST", f"{url}/chat/completions", json=body) as response:  # type: ignore[attr-defined]
        async for _ in response.aiter_lines():
            pass
    return (time.perf_counter() - start) * 1000


def report(name: str, router: Router, own: list[float], wall: float, n: int) -> None:
    rows = router.ledger.rows() if router.ledger else []
    ids = [row["id"] for row in rows]
    answered = sum(row["outcome"] == "answered" for row in rows)
    own.sort()
    p99 = own[max(0, int(len(own) * 0.99) - 1)]
    print(
        f"  {name:<22} wall {wall:6.2f} s   answers {len(own)}/{n}   ledger rows {len(rows)} "
        f"(answered {answered}, lost {n - len(rows)}, duplicated {len(ids) - len(set(ids))})"
    )
    print(
        f"  {'':<22} router's own time per request: p50 {statistics.median(own):.2f} ms, "
        f"p99 {p99:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    n = args.requests
    with FaultServer(["ok"]) as server, tempfile.TemporaryDirectory() as tmp:
        server._server.socket.listen(2048)  # its default backlog of 5 drops a burst of 500
        url = f"{server.base_url}/v1"
        arouter = router_for(url, f"{tmp}/async.sqlite3")
        srouter = router_for(url, f"{tmp}/sync.sqlite3")

        async def everything() -> tuple[list[float], float]:
            await one_async(arouter, -1)  # warm: the client, the SDK import, the ledger
            start = time.perf_counter()
            own = await asyncio.gather(*(one_async(arouter, i) for i in range(n)))
            return list(own), time.perf_counter() - start

        aown, awall = asyncio.run(everything())

        one_sync(srouter, -1)
        with ThreadPoolExecutor(max_workers=n) as pool:
            start = time.perf_counter()
            sown = list(pool.map(lambda i: one_sync(srouter, i), range(n)))
            swall = time.perf_counter() - start
        print(f"{n} concurrent streamed requests against the rig's streaming server")
        report("Router.astream", arouter, aown, awall, n + 1)
        report(f"{n} threads, stream", srouter, sown, swall, n + 1)
        print("  (ledger rows include one warm-up request per path)")

        async def raw_and_routed() -> tuple[list[float], list[float], float, float]:
            import httpx  # noqa: PLC0415

            async with httpx.AsyncClient(timeout=60) as client:
                await one_raw(client, url, -1)
                cpu = time.process_time()
                raw = await asyncio.gather(*(one_raw(client, url, i) for i in range(n)))
                raw_cpu = time.process_time() - cpu

                async def routed(i: int) -> float:
                    start = time.perf_counter()
                    async for _ in arouter.astream(request(i)):
                        pass
                    return (time.perf_counter() - start) * 1000

                cpu = time.process_time()
                walls = await asyncio.gather(*(routed(i) for i in range(n)))
                routed_cpu = time.process_time() - cpu
            return list(raw), list(walls), raw_cpu, routed_cpu

        raw, walls, raw_cpu, routed_cpu = asyncio.run(raw_and_routed())
        raw.sort()
        walls.sort()
        p99 = max(0, int(n * 0.99) - 1)
        print(
            f"  fair: the same {n} calls with the raw async httpx client, same concurrency: "
            f"p50 {statistics.median(raw):.1f} ms, p99 {raw[p99]:.1f} ms; through "
            f"Router.astream p50 {statistics.median(walls):.1f} ms, p99 {walls[p99]:.1f} ms"
        )
        print(
            f"  router overhead at {n} concurrent: wall p50 "
            f"{statistics.median(walls) - statistics.median(raw):+.1f} ms, p99 "
            f"{walls[p99] - raw[p99]:+.1f} ms; CPU per request "
            f"{(routed_cpu - raw_cpu) / n * 1000:.2f} ms (process CPU, server included in both)"
        )


if __name__ == "__main__":
    main()
