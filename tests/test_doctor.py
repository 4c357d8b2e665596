"""`devpulse doctor`: one line per check; a dead [local] default fails, the rest warn."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devpulse import ExitCode, config_from_mapping
from devpulse.cli import main
from devpulse.commands.doctor import (
    check_allowlist,
    check_limits,
    check_local_sides,
    check_memory,
    run_checks,
)
from devpulse.core.ledger import SCHEMA_VERSION
from devpulse.core.types import DeviceMemory
from tests.rig.llama_server import LlamaServer, free_port
from tests.rig.ollama_server import OllamaRig
from tests.support import recording_server

SENTINEL = "sk-ant-SENTINEL-never-printed-7f3a9c"


def dead() -> str:
    return f"http://127.0.0.1:{free_port()}"


def doctor(
    capsys: pytest.CaptureFixture[str], cfg: Path, *extra: str
) -> tuple[int, dict[str, Any], str]:
    code = main(["--config", str(cfg), "doctor", "--json", *extra])
    out, err = capsys.readouterr()
    payload = json.loads(out)
    return code, payload, err


def by_name(payload: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in payload["checks"]}


def write_config(tmp_path: Path, text: str) -> Path:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    return cfg


def test_doctor_against_the_real_rig(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    llama_server: LlamaServer,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    cfg = write_config(
        tmp_path,
        f"""
[backends.llama_server]
base_url = "{llama_server.base_url}/v1"

[backends.ollama]
base_url = "{dead()}"

[backends.local_messages]   # llama-server speaks the Messages API too
side = "local"
kind = "anthropic"
base_url = "{llama_server.base_url}"
""",
    )
    code, payload, _ = doctor(capsys, cfg)
    checks = by_name(payload)
    assert (code, payload["status"]) == (ExitCode.OK, "ok")
    assert checks["config"]["result"] == "ok"
    assert str(cfg) in checks["config"]["detail"]
    local = checks["backends.llama_server"]
    assert local["result"] == "ok"
    assert "models: gemma" in local["detail"]
    assert checks["backends.local_messages"]["result"] == "ok"
    assert checks["backends.ollama"]["result"] == "warn"  # not the [local] default
    cloud = checks["backends.anthropic"]
    assert cloud["result"] == "warn"
    assert "ANTHROPIC_API_KEY" in cloud["detail"]
    assert checks["ledger"]["result"] == "ok"
    assert f"schema version {SCHEMA_VERSION}" in checks["ledger"]["detail"]
    assert checks["memory"]["result"] == "ok"
    assert "cpu" in checks["memory"]["detail"]


def test_doctor_fails_when_the_local_default_does_not_answer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = write_config(
        tmp_path,
        f'[backends.llama_server]\nbase_url = "{dead()}/v1"\n'
        f'[backends.ollama]\nbase_url = "{dead()}"\n',
    )
    code, payload, _ = doctor(capsys, cfg)
    checks = by_name(payload)
    assert (code, payload["status"]) == (ExitCode.PROBLEM, "fail")
    assert checks["backends.llama_server"]["result"] == "fail"
    assert "nothing answers" in checks["backends.llama_server"]["detail"]
    assert checks["backends.ollama"]["result"] == "warn"
    code = main(["--config", str(cfg), "doctor"])
    lines = capsys.readouterr().out.splitlines()
    assert code == ExitCode.PROBLEM
    assert len(lines) == len(payload["checks"])
    assert any(line.startswith("fail backends.llama_server: ") for line in lines)
    assert any(line.startswith("ok   ledger: ") for line in lines)


def test_a_set_api_key_is_ok_and_never_printed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL)
    cfg = write_config(tmp_path, f'[backends.llama_server]\nbase_url = "{dead()}/v1"\n')
    _, payload, err = doctor(capsys, cfg)
    assert by_name(payload)["backends.anthropic"]["result"] == "ok"
    assert SENTINEL not in json.dumps(payload) + err
    main(["--config", str(cfg), "doctor"])
    out, err = capsys.readouterr()
    assert SENTINEL not in out + err


def test_an_unwritable_ledger_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cfg = write_config(tmp_path, f'[ledger]\npath = "{blocker / "ledger.sqlite3"}"\n')
    code, payload, _ = doctor(capsys, cfg)
    ledger = by_name(payload)["ledger"]
    assert (code, ledger["result"]) == (ExitCode.PROBLEM, "fail")
    assert "cannot write the ledger" in ledger["detail"]


def test_a_disabled_ledger_is_ok(tmp_path: Path) -> None:
    config = config_from_mapping(
        {"ledger": {"enabled": False}, "backends": {"llama_server": {"base_url": dead()}}}
    )
    checks = {c.name: c for c in run_checks(config, lambda: [])}
    assert (checks["ledger"].result, checks["ledger"].detail) == (
        "ok",
        "disabled (ledger.enabled = false)",
    )
    assert checks["memory"].result == "warn"


def test_memory_probes_are_reported_and_a_broken_one_fails() -> None:
    device = DeviceMemory(device="gpu0", kind="nvidia", total_mb=8000, free_mb=6000, budget_mb=5800)
    ok = check_memory(lambda: [None, [device]])
    assert (ok.result, ok.detail) == (
        "ok",
        "gpu0 (nvidia): 6000 MB free of 8000 MB, budget 5800 MB",
    )
    assert check_memory(lambda: [None]).result == "warn"

    def broken() -> list[Any]:
        raise RuntimeError("the card fell off the bus")

    failed = check_memory(broken)
    assert failed.result == "fail"
    assert "the card fell off the bus" in failed.detail


def test_doctor_lists_ollama_models_and_says_when_the_local_model_is_missing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ollama_rig: OllamaRig
) -> None:
    base = f'[backends.ollama]\nbase_url = "{ollama_rig.base_url}"\n'
    cfg = write_config(tmp_path, base + '[local]\nbackend = "ollama"\nmodel = "gemma3:270m"\n')
    code, payload, _ = doctor(capsys, cfg)
    ollama = by_name(payload)["backends.ollama"]
    assert (code, ollama["result"]) == (ExitCode.OK, "ok")
    assert "gemma3:270m" in ollama["detail"]
    cfg = write_config(tmp_path, base + '[local]\nbackend = "ollama"\nmodel = "qwen3:8b"\n')
    code, payload, _ = doctor(capsys, cfg)
    ollama = by_name(payload)["backends.ollama"]
    assert (code, ollama["result"]) == (ExitCode.OK, "warn")
    assert "'qwen3:8b' is not pulled" in ollama["detail"]


def test_a_first_token_limit_the_budget_makes_unreachable_is_a_warning() -> None:
    quiet = {"ledger": {"enabled": False}}
    fine = check_limits(config_from_mapping(quiet))
    assert fine.result == "ok"
    late = check_limits(
        config_from_mapping(
            {**quiet, "failover": {"budget_s": 30, "local_timeout_s": 30}, "backends": {}}
        )
    )
    assert late.result == "warn"
    assert "backends.llama_server (30 s)" in late.detail
    assert "backends.anthropic" not in late.detail  # its own limit (cloud) is below 30 s


def test_an_allowlist_entry_not_anchored_is_a_warning() -> None:
    def check(*entries: str) -> Any:
        return check_allowlist(config_from_mapping({"privacy": {"allowlist": list(entries)}}))

    assert check().result == "ok"
    assert check("^ci-bot@acme-corp\\.com$", r"\Afixture-[0-9]+\z").result == "ok"
    loose = check("^ci-bot@acme-corp\\.com$", "ci-bot", "^test-")
    assert loose.result == "warn"
    assert "privacy.allowlist[1], privacy.allowlist[2]" in loose.detail
    assert "privacy.allowlist[0]" not in loose.detail


@contextlib.contextmanager
def not_http(greeting: bytes = b"SSH-2.0-OpenSSH_9.6\r\n") -> Iterator[str]:
    """A port that answers each connection at once, but not in HTTP (an SSH server)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(greeting)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


def test_a_port_that_does_not_speak_http_is_one_line_and_no_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with not_http() as base:
        cfg = write_config(
            tmp_path,
            '[local]\nbackend = "weird"\nmodel = "x"\n'
            f'[backends.weird]\nside = "local"\nkind = "openai_compat"\nbase_url = "{base}/v1"\n',
        )
        code, payload, err = doctor(capsys, cfg)
        check = by_name(payload)["backends.weird"]
        assert (code, check["result"]) == (ExitCode.PROBLEM, "fail")
        assert check["detail"] == (
            f"answers at {base}/v1/models, but does not speak HTTP (BadStatusLine)"
        )
        assert "Traceback" not in err
        code = main(["--config", str(cfg), "doctor"])
        out, err = capsys.readouterr()
    assert code == ExitCode.PROBLEM
    assert f"fail backends.weird: answers at {base}/v1/models, but does not speak HTTP" in out
    assert "Traceback" not in err


def test_a_check_that_raises_is_its_own_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("devpulse.commands.doctor.check_backend", broken)
    cfg = write_config(tmp_path, f'[backends.llama_server]\nbase_url = "{dead()}/v1"\n')
    _, payload, err = doctor(capsys, cfg)
    check = by_name(payload)["backends.llama_server"]
    assert (check["result"], check["detail"]) == ("fail", "the check failed (RuntimeError)")
    assert "Traceback" not in err


@contextlib.contextmanager
def model_list() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """An OpenAI-style server with one model; each request's path and Authorization header
    are recorded."""
    with recording_server({"data": [{"id": "m1"}]}) as found:
        yield found


def test_a_key_in_the_base_url_query_is_sent_but_never_printed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with model_list() as (host, seen):
        cfg = write_config(
            tmp_path,
            f'[backends.llama_server]\nbase_url = "http://{host}/v1/?key={SENTINEL}"\n',
        )
        code, payload, err = doctor(capsys, cfg)
        main(["--config", str(cfg), "doctor"])
        out, err2 = capsys.readouterr()
    check = by_name(payload)["backends.llama_server"]
    assert (code, check["result"]) == (ExitCode.OK, "ok")
    assert check["detail"] == f"answers at http://{host}/v1/models?key=***; models: m1"
    assert SENTINEL not in json.dumps(payload) + err + out + err2
    assert seen[0] == (f"/v1/models?key={SENTINEL}", None)  # the path before the query


def test_user_info_in_the_base_url_is_sent_as_basic_auth(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with model_list() as (host, seen):
        cfg = write_config(
            tmp_path, f'[backends.llama_server]\nbase_url = "http://user:pw%40123@{host}/v1"\n'
        )
        code, payload, err = doctor(capsys, cfg)
    check = by_name(payload)["backends.llama_server"]
    assert (code, check["result"]) == (ExitCode.OK, "ok")
    assert check["detail"] == f"answers at http://user:***@{host}/v1/models; models: m1"
    assert "pw%40123" not in json.dumps(payload) + err
    assert seen == [("/v1/models", "Basic dXNlcjpwd0AxMjM=")]  # user:pw@123, as httpx sends it


def test_a_config_that_cannot_be_loaded_is_the_config_checks_fail(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("not = [valid toml\n")
    assert main(["--config", str(broken), "doctor", "--json"]) == ExitCode.USAGE
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["status"] == "fail"
    (config,) = report["checks"]  # the checks that need the config do not run
    assert config["name"] == "config"
    assert config["result"] == "fail"
    assert config["detail"].startswith(f"config {broken} is not valid TOML")
    assert err == ""


def test_a_backend_declared_local_on_a_clouds_api_is_a_warning() -> None:
    """Review 26: privacy trusts `side = "local"`; a cloud's URL there gets every secret."""

    def check(**backends: dict[str, Any]) -> Any:
        return check_local_sides(config_from_mapping({"backends": backends}))

    own = {"kind": "openai_compat", "side": "local"}
    assert (
        check(
            box={**own, "base_url": "http://192.168.1.5:8080/v1"},
            gpu={**own, "base_url": "http://gpu-box.corp:8000/v1"},
            here={**own, "base_url": "http://127.0.0.1:1234/v1"},
            openai={
                "kind": "openai_compat",
                "side": "cloud",
                "base_url": "https://api.openai.com/v1",
            },
        ).result
        == "ok"
    )
    wrong = check(
        oops={**own, "base_url": "https://api.openai.com/v1"},
        azure={**own, "base_url": "https://acme.openai.azure.com/openai"},
        far={**own, "base_url": "http://203.0.113.9:8080/v1"},
        fine={**own, "base_url": "http://10.0.0.7:8080/v1"},
        public={**own, "base_url": "http://8.8.8.8:8080/v1"},
    )
    assert wrong.result == "warn"
    assert "backends.oops (https://api.openai.com/v1)" in wrong.detail
    assert "backends.azure" in wrong.detail
    assert "backends.far" not in wrong.detail  # 203.0.113.0/24 is documentation, not global
    assert "backends.fine" not in wrong.detail
    assert "backends.public (http://8.8.8.8:8080/v1)" in wrong.detail
