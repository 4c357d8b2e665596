"""Run a command while the rig's instruct model serves on a fixed port (the embedded default).

    python -m tests.rig.serve --port 8080 -- devpulse ask "summarize this changelog"

The server starts, the command runs with it, and the server stops; the exit status is the
command's. Used by `make demo`, so a fresh machine answers with no Ollama and no API key. The
model is SmolLM2 135M Instruct, a tiny stand-in: its answers stop by themselves, but they are
rarely right (README.md says how to point DevPulse at a real model).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys

from tests.rig.llama_server import INSTALL_HINT, LlamaServer, find_rig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    rig, missing = find_rig()
    if rig is None:
        print(f"rig: {missing}; {INSTALL_HINT}", file=sys.stderr)
        return 2
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", args.port)) == 0:
            print(
                f"rig: port {args.port} is already in use; stop what serves there or pick "
                "another --port",
                file=sys.stderr,
            )
            return 2
    server = LlamaServer.instruct(rig, port=args.port)
    try:
        server.start()
        print(
            f"rig: {rig.instruct_model.name} on {server.base_url}, log {server.log}",
            file=sys.stderr,
        )
        return subprocess.run(args.command, check=False).returncode
    except RuntimeError as exc:  # llama-server did not come up: why, and where its log is
        print(f"rig: {exc}", file=sys.stderr)
        return 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
