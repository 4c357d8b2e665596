"""Start-up stays light: routing, scanning and memory checks load no client library.

Each check runs in a fresh interpreter, since this test process has long imported them all.
How long start-up takes is a figure for bench/cli_startup.py, not an assertion here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What routing, `scan` and `ai` never need: backends' SDKs, gguf's numpy, LangChain.
HEAVY = ("anthropic", "httpx2", "ollama", "httpx", "numpy", "gguf", "langchain_core")

PROBE = """
import json, sys
{body}
heavy = sorted(name for name in {heavy!r} if name in sys.modules)
print(json.dumps({{"result": result, "heavy": heavy}}))
"""


def in_fresh_python(body: str) -> dict:
    """Run `body` (which sets `result`) in a new interpreter using this checkout's devpulse."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(body=body, heavy=HEAVY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_route_scan_and_ai_import_no_client_library(tmp_path) -> None:
    prompt = tmp_path / "changelog.md"
    prompt.write_text("The release adds streaming retries and fixes a race.\n" * 40)
    commands = [
        ["route", "x"],
        ["route", "summarize this changelog"],
        ["ai", "--before-load", "1000"],
        ["scan", str(prompt)],
    ]
    found = in_fresh_python(
        f"from devpulse.cli import main\nresult = [int(main(argv)) for argv in {commands!r}]"
    )
    assert found["heavy"] == [], f"imported without a dispatch: {found['heavy']}"
    route, summary, ai, scan = found["result"]
    assert (route, summary, scan) == (0, 0, 0)
    assert ai in (0, 10, 20)  # whether 1000 MB fits here is not the point


def test_version_builds_no_plugin_manager() -> None:
    """--version answers before the config and the plugins: it needs neither, nor the
    commands' modules (the ledger's, the backends')."""
    found = in_fresh_python(
        "from devpulse.cli import main\n"
        "codes = [int(main(argv)) for argv in (['--version'], ['--config', '/no/file', '-v', "
        "'--version'])]\n"
        "result = [codes, sorted(m for m in sys.modules if m.startswith('devpulse.'))]"
    )
    codes, loaded = found["result"]
    assert codes == [0, 0]
    assert "devpulse.core.plugins" not in loaded
    assert not [m for m in loaded if m.startswith(("devpulse.plugins", "devpulse.core.ledger"))]
    assert found["heavy"] == []


def test_a_dispatch_loads_the_client_library_it_needs() -> None:
    found = in_fresh_python(
        "import os\n"
        "os.environ['ANTHROPIC_API_KEY'] = 'sk-ant-test'\n"
        "from devpulse import Decision, Request, Side, config_from_mapping\n"
        "from devpulse.core.plugins import make_plugin_manager\n"
        "pm = make_plugin_manager(config_from_mapping({}), entry_points=False)\n"
        "request = Request.from_prompt('x')\n"
        "for backend in ('anthropic', 'ollama'):\n"
        "    decision = Decision(Side.CLOUD, backend, 'm', ())\n"
        "    pm.hook.prepare_dispatch(request=request, decision=decision)\n"
        "result = None"
    )
    assert {"anthropic", "httpx2", "ollama", "httpx"} <= set(found["heavy"])
    assert not {"numpy", "langchain_core"} & set(found["heavy"])


def test_a_cloud_request_with_no_key_fails_without_loading_the_sdk() -> None:
    """With no key for Anthropic's API the request fails before anything is sent: the SDK,
    a second to import, is not loaded only to say so."""
    found = in_fresh_python(
        "import os\n"
        "os.environ.pop('ANTHROPIC_API_KEY', None)\n"
        "from devpulse import Decision, Request, Side, config_from_mapping\n"
        "from devpulse.core.plugins import make_plugin_manager\n"
        "pm = make_plugin_manager(config_from_mapping({}), entry_points=False)\n"
        "decision = Decision(Side.CLOUD, 'anthropic', 'm', ())\n"
        "pm.hook.prepare_dispatch(request=Request.from_prompt('x'), decision=decision)\n"
        "result = None"
    )
    assert "anthropic" not in found["heavy"]


def test_only_the_commands_that_scan_compile_the_privacy_rules(monkeypatch, capsys) -> None:
    """Compiling the packaged rules is most of a start-up: `--help` and `cost` skip it."""
    from devpulse.cli import main  # noqa: PLC0415
    from devpulse.plugins.privacy.scanner import Scanner  # noqa: PLC0415

    compiles: list[str] = []
    compile_now = Scanner._compile

    def counted(self: Scanner, config: object, **options: bool) -> None:
        compiles.append("compiled")
        compile_now(self, config, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(Scanner, "_compile", counted)
    for argv in (["--help"], ["cost", "--json"], ["plugins", "--json"]):
        assert main(argv) == 0, capsys.readouterr().err
    assert compiles == []
    assert main(["route", "--json", "see DB_PASSWORD=hunter2-Xq9!v"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["side"] == "local"
    assert compiles == ["compiled"]
