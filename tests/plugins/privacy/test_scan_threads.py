"""A long text's rules run on worker threads, and find exactly what they find one by one."""

from __future__ import annotations

import functools
import json
import multiprocessing
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devpulse import config_from_mapping
from devpulse.plugins.privacy import Scanner
from devpulse.plugins.privacy import readers as readers_module
from devpulse.plugins.privacy import scanner as scanner_module

SCANNER = Scanner(config_from_mapping({}).privacy)
CORPUS_TEXTS = [
    json.loads(line)["text"]
    for line in (Path(__file__).resolve().parents[2] / "data/privacy/corpus.jsonl").open()
]
# A flood for the rules that read a tool's options: each line's value new, each turned down.
FLOOD = "".join(f"sshpass -p x{i}\nredis-cli -a y{i}\nmysql -pz{i}\n" for i in range(400))
# ...and for the readers: short passwords in JSON, a header, curl -u, XML and a CSV, each
# turned down, each reader's past its candidates.
READER_FLOOD = "".join(
    f'{{"password": "x{i}"}}\n-H "X-Api-Key: z{i}"\ncurl -u "bob:p{i}" https://h\n'
    f"<password>q{i}</password>\n"
    for i in range(2100)
) + "".join(f"user,password\nbob,w{i}\n" for i in range(2100))


def _sequential(monkeypatch: pytest.MonkeyPatch, text: str) -> list[Any]:
    with monkeypatch.context() as patch:
        patch.setattr(scanner_module, "PARALLEL_BYTES", len(text) + 1)
        return SCANNER.scan(text)


def _threads_of_runs(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The names of the threads that the scanner's rules run on from now on."""
    names: set[str] = set()
    run = Scanner._run

    def recorded(self: Scanner, *args: Any) -> Any:
        names.add(threading.current_thread().name)
        return run(self, *args)

    monkeypatch.setattr(Scanner, "_run", recorded)
    return names


def test_a_long_texts_rules_run_on_worker_threads(monkeypatch) -> None:
    monkeypatch.setattr(scanner_module, "SCAN_WORKERS", 2)
    text = "\n".join(CORPUS_TEXTS)
    names = _threads_of_runs(monkeypatch)
    monkeypatch.setattr(scanner_module, "PARALLEL_BYTES", len(text))
    parallel = SCANNER.scan(text)
    assert any(name.startswith("devpulse-scan") for name in names)
    assert parallel == _sequential(monkeypatch, text)
    assert any(f.category == "secret" for f in parallel)

    names.clear()
    SCANNER.scan(CORPUS_TEXTS[0])  # a short text: no hand-offs
    assert names == {threading.current_thread().name}


def test_a_long_texts_readers_run_on_worker_threads_and_find_what_they_find_in_turn(
    monkeypatch,
) -> None:
    """Each reader judges the text on its own: on the threads, the same findings in the same
    order, floods that stop a reader included."""
    monkeypatch.setattr(scanner_module, "SCAN_WORKERS", 2)
    names: dict[str, set[str]] = {}

    def recorded(rule_id: str, reader: Any) -> Any:
        def read(*args: Any) -> Any:
            names.setdefault(rule_id, set()).add(threading.current_thread().name)
            yield from reader(*args)

        return read

    monkeypatch.setattr(
        readers_module,
        "READERS",
        tuple((i, pattern, recorded(i, reader)) for i, pattern, reader in readers_module.READERS),
    )
    text = "\n".join(CORPUS_TEXTS) + "\n" + READER_FLOOD
    monkeypatch.setattr(scanner_module, "PARALLEL_BYTES", 0)
    parallel = SCANNER.scan(text)
    assert any(n.startswith("devpulse-scan") for found in names.values() for n in found)
    assert parallel == _sequential(monkeypatch, text)
    assert {"assigned-credential:unverified", "curl-user-credential"} <= {
        f.rule_id for f in parallel
    }
    # Each reader's own findings, unresolved: the floods' unverified ones overlap.
    flood = READER_FLOOD.encode()
    pool = scanner_module.scan_workers.get()
    found = readers_module.read_all(
        flood, each=functools.partial(scanner_module._done, workers=pool)
    )
    assert found == readers_module.read_all(flood)
    stopped = ("assigned", "header", "curl-user", "xml-element", "table")
    assert {f.rule_id for f in found if f.rule_id.endswith(":unverified")} == {
        f"{reader}-credential:unverified" for reader in stopped
    }


def test_with_every_reader_switched_off_no_reader_set_reads_a_long_text(monkeypatch) -> None:
    monkeypatch.setattr(scanner_module, "SCAN_WORKERS", 2)
    monkeypatch.setattr(scanner_module, "PARALLEL_BYTES", 0)
    asked: list[int] = []
    readers_for = scanner_module.readers_for

    def recorded(data: bytes) -> Any:
        asked.append(len(data))
        return readers_for(data)

    monkeypatch.setattr(scanner_module, "readers_for", recorded)
    off = list(readers_module.RULE_IDS)
    scanner = Scanner(config_from_mapping({"privacy": {"disabled_rules": off}}).privacy)
    text = "\n".join(CORPUS_TEXTS[:50])
    findings = scanner.scan(text)
    assert asked == []
    assert not {f.rule_id.split(":")[0] for f in findings} & set(off)
    SCANNER.scan(text)  # every reader on: the set is asked
    assert asked


def test_on_one_cpu_a_long_text_is_read_on_the_callers_thread(monkeypatch) -> None:
    monkeypatch.setattr(scanner_module, "SCAN_WORKERS", 1)
    monkeypatch.setattr(scanner_module, "PARALLEL_BYTES", 0)
    names = _threads_of_runs(monkeypatch)
    SCANNER.scan("\n".join(CORPUS_TEXTS[:50]))
    assert names == {threading.current_thread().name}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.integers(0, len(CORPUS_TEXTS) - 1), min_size=1, max_size=40),
    flood=st.booleans(),
    budget=st.integers(0, 40),
    per_rule=st.integers(1, 8),
)
def test_rules_run_ahead_find_what_they_find_one_by_one(picks, flood, budget, per_rule) -> None:
    """With budgets small enough to run out: each rule run ahead judges what it would have
    judged after the rules before it, and the rest, once the budget is short, run in turn."""
    text = "\n".join(CORPUS_TEXTS[i] for i in picks) + ("\n" + FLOOD[:4000] if flood else "")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scanner_module, "SCAN_WORKERS", 2)
        patch.setattr(scanner_module, "SCAN_CANDIDATES", budget)
        patch.setattr(scanner_module, "MAX_CANDIDATES_PER_RULE", per_rule)
        patch.setattr(scanner_module, "PARALLEL_BYTES", 0)
        parallel = SCANNER.scan(text)
        assert parallel == _sequential(patch, text)


def test_an_error_in_a_rule_run_ahead_reaches_the_caller(monkeypatch) -> None:
    monkeypatch.setattr(scanner_module, "SCAN_WORKERS", 2)
    monkeypatch.setattr(scanner_module, "PARALLEL_BYTES", 0)
    run = Scanner._run

    def failing(self: Scanner, rule: Any, *args: Any) -> Any:
        if rule.id == "email-address":
            raise RuntimeError("validator broke")
        return run(self, rule, *args)

    monkeypatch.setattr(Scanner, "_run", failing)
    with pytest.raises(RuntimeError, match="validator broke"):
        SCANNER.scan("\n".join(CORPUS_TEXTS))


def _scan_long_text(done: Any) -> None:
    findings = SCANNER.scan("\n".join(CORPUS_TEXTS) * 5)
    done.put(len(findings))


def test_a_forked_child_reads_a_long_text_with_threads_of_its_own() -> None:
    """The parent's pool has threads; a forked child has none of them, and must not wait for
    them."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    text = "\n".join(CORPUS_TEXTS) * 5
    assert len(text.encode()) >= scanner_module.PARALLEL_BYTES
    expected = len(SCANNER.scan(text))  # the parent's pool is started
    context = multiprocessing.get_context("fork")
    done = context.Queue()
    child = context.Process(target=_scan_long_text, args=(done,))
    child.start()
    child.join(60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive, "the forked child hung on its parent's scan threads"
    assert child.exitcode == 0
    assert done.get(timeout=5) == expected


EXITING = """
import atexit, json, sys, threading, time
from devpulse import config_from_mapping
from devpulse.plugins.privacy import Scanner
scanner = Scanner(config_from_mapping({}).privacy)
texts = [json.loads(line)["text"] for line in open(sys.argv[1])]
text = ("\\n".join(texts) * 10)[:1_200_000]
print("main", len(scanner.scan(text)), flush=True)

def later():
    time.sleep(0.5)  # the main thread has returned, and the pools are shut down
    print("thread", len(scanner.scan(text)), flush=True)

atexit.register(lambda: print("atexit", len(scanner.scan(text)), flush=True))
threading.Thread(target=later).start()
"""


def test_a_long_text_is_read_while_the_interpreter_exits() -> None:
    """Python shuts the thread pools down before it joins the other threads and runs the
    atexit hooks: a scan then reads its rules in turn, and finds what it found before."""
    corpus = Path(__file__).resolve().parents[2] / "data/privacy/corpus.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", EXITING, str(corpus)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    counts = dict(line.split() for line in done.stdout.splitlines())
    assert set(counts) == {"main", "thread", "atexit"}, done.stdout + done.stderr[-2000:]
    assert counts["thread"] == counts["main"] == counts["atexit"]
