"""500 requests at once: `Router.astream` on one event loop against 500 threads on the sync
path (`Router.stream`), in the same run, against the rig's streaming server (the fault
server's "ok" answer over the OpenAI-compatible protocol, so the server is never the limit).

The server runs in a process of its own, as every real server does: in this one, its 500
threads took the GIL from the event loop being measured (`--server-in-process` puts it
back, to compare with figures taken that way).

Prints, for each path: wall time, answers, ledger rows (lost and duplicated; read after
`Router.close()`, in another process's connection), and the router's own time per request
at p50 and p99: the request's wall minus the time spent inside the backend's stream (each
of its reads, and its close). Also printed, as it was measured before: the wall minus the
answer's `latency_s`, which stops at the answer's last event and so also charges the router
with closing the HTTP response (the client's pool lock costs an event-loop turn, which with
500 requests in flight is tens of milliseconds of queue, not work). Then, fairly: the same
calls with the raw async HTTP client at the same concurrency, and through `Router.astream`
again; the overhead is the difference of their walls, and of the process CPU per request.
Targets for astream: 0 lost, 0 duplicated, own p50 <= 1 ms, p99 <= 5 ms.
Run: `python bench/astream_concurrency.py [--requests N] [--server-in-process]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from pathlib import Path
from typing import Any

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


# Seconds the current request has spent inside the backend's stream (reads and close).
INSIDE: ContextVar[list[float]] = ContextVar("inside")


def timed(router: Router) -> None:
    """Wrap the backend's streams so each read and the close add to the request's INSIDE."""
    backend = next(p.backend for p in router.pm.get_plugins() if getattr(p, "name", "") == "near")
    astream, stream = backend.astream, backend.stream

    async def in_async(chunks: Any) -> AsyncIterator[Any]:
        spent = INSIDE.get([])  # the fair line below does not count it
        try:
            while True:
                start = time.perf_counter()
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                finally:
                    spent.append(time.perf_counter() - start)
                yield chunk
        finally:
            start = time.perf_counter()
            await chunks.aclose()
            spent.append(time.perf_counter() - start)

    def in_sync(chunks: Any) -> Iterator[Any]:
        spent = INSIDE.get([])  # the fair line below does not count it
        try:
            while True:
                start = time.perf_counter()
                try:
                    chunk = next(chunks)
                except StopIteration:
                    return
                finally:
                    spent.append(time.perf_counter() - start)
                yield chunk
        finally:
            start = time.perf_counter()
            chunks.close()
            spent.append(time.perf_counter() - start)

    backend.astream = lambda request, decision: in_async(astream(request, decision))
    backend.stream = lambda request, decision: in_sync(stream(request, decision))


async def one_async(router: Router, i: int) -> tuple[float, float]:
    """(own time, wall minus latency_s) in ms."""
    spent: list[float] = []
    INSIDE.set(spent)
    start = time.perf_counter()
    final = None
    async for chunk in router.astream(request(i)):
        final = chunk.response or final
    wall = time.perf_counter() - start
    assert final is not None
    return (wall - sum(spent)) * 1000, (wall - final.latency_s) * 1000


def one_sync(router: Router, i: int) -> tuple[float, float]:
    spent: list[float] = []
    INSIDE.set(spent)
    start = time.perf_counter()
    final = None
    for chunk in router.stream(request(i)):
        final = chunk.response or final
    wall = time.perf_counter() - start
    assert final is not None
    return (wall - sum(spent)) * 1000, (wall - final.latency_s) * 1000


async def one_raw(client: object, url: str, i: int) -> float:
    """The same call with the raw async HTTP client (no router): the fair baseline."""
    start = time.perf_counter()
    body = {"model": "100", "max_tokens": 8, "stream": True}
    body["messages"] = [{"role": "user", "content": f"request {i}"}]
    async with client.stream("POST", f"{url}/chat/completions", json=body) as response:  # type: ignore[attr-defined]
        async for _ in response.aiter_lines():
            pass
    return (time.perf_counter() - start) * 1000


def report(
    name: str, router: Router, times: list[tuple[float, float]], wall: float, n: int
) -> None:
    close = getattr(router, "close", None)  # older checkouts commit each row at once
    if close is not None:
        close()
    assert router.ledger is not None
    with contextlib.closing(sqlite3.connect(router.ledger.path)) as db:  # as another process
        rows = db.execute("SELECT id, outcome FROM requests").fetchall()
    ids = [row[0] for row in rows]
    answered = sum(row[1] == "answered" for row in rows)
    print(
        f"  {name:<22} wall {wall:6.2f} s   answers {len(times)}/{n}   ledger rows {len(rows)} "
        f"(answered {answered}, lost {n - len(rows)}, duplicated {len(ids) - len(set(ids))})"
    )
    own, old = sorted(t[0] for t in times), sorted(t[1] for t in times)
    p99 = max(0, int(len(own) * 0.99) - 1)
    print(
        f"  {'':<22} router's own time per request: p50 {statistics.median(own):.2f} ms, "
        f"p99 {own[p99]:.2f} ms"
    )
    print(
        f"  {'':<22} (wall minus latency_s: p50 {statistics.median(old):.2f} ms, "
        f"p99 {old[p99]:.2f} ms)"
    )


def serve(conn: Any) -> None:
    """The fault server, in a process of its own: sends its URL, serves until told to stop."""
    with FaultServer(["ok"]) as server:
        server._server.socket.listen(2048)  # its default backlog of 5 drops a burst of 500
        conn.send(server.base_url)
        conn.recv()


@contextlib.contextmanager
def server_url(in_process: bool) -> Iterator[str]:
    if in_process:
        with FaultServer(["ok"]) as server:
            server._server.socket.listen(2048)
            yield server.base_url
        return
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=serve, args=(theirs,))
    process.start()
    try:
        yield ours.recv()
    finally:
        ours.send("stop")
        process.join(10)


def timed_pool(fn: Callable[[int], tuple[float, float]], n: int) -> tuple[list[Any], float]:
    with ThreadPoolExecutor(max_workers=n) as pool:
        start = time.perf_counter()
        out = list(pool.map(fn, range(n)))
        return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--server-in-process", action="store_true")
    args = parser.parse_args()
    n = args.requests
    with server_url(args.server_in_process) as base, tempfile.TemporaryDirectory() as tmp:
        url = f"{base}/v1"
        arouter = router_for(url, f"{tmp}/async.sqlite3")
        srouter = router_for(url, f"{tmp}/sync.sqlite3")
        timed(arouter)
        timed(srouter)

        async def everything() -> tuple[list[tuple[float, float]], float]:
            await one_async(arouter, -1)  # warm: the client, the SDK import, the ledger
            start = time.perf_counter()
            own = await asyncio.gather(*(one_async(arouter, i) for i in range(n)))
            return list(own), time.perf_counter() - start

        aown, awall = asyncio.run(everything())

        one_sync(srouter, -1)
        sown, swall = timed_pool(lambda i: one_sync(srouter, i), n)
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
