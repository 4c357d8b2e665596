"""llama-server as a model host: what it holds (`GET /models`) and unloading (router mode).

In router mode (`--models-dir`, no `-m`) llama-server lists each model with a status and
the arguments it launches the model with, and unloads one on `POST /models/unload`; a
single-model server lists its one model, loaded for as long as it runs. llama-server
reports no memory per model, so a model's size is its file's (its weights), read where the
server runs on this machine. Plain HTTP from the standard library, with short timeouts.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from devpulse.core.config import BackendConfig, endpoint, without_userinfo
from devpulse.core.types import LoadedModel

MB = 1024 * 1024
TIMEOUT_S = 1.0
UNLOAD_TIMEOUT_S = 10.0
# What a server that does not answer raises from these calls; so does one that answers
# something other than llama-server's JSON (ValueError, or TypeError for a wrong type).
UNREACHABLE = (OSError, ValueError, TypeError, http.client.HTTPException)

T = TypeVar("T")


def root(backend: BackendConfig) -> str:
    """The server root: llama-server serves /props and /models beside /v1 (a query string
    the base URL carries is kept)."""
    parts = urllib.parse.urlsplit(backend.base_url or "")
    path = parts.path.removesuffix("/").removesuffix("/v1")
    return urllib.parse.urlunsplit(parts._replace(path=path, fragment=""))


def call_json(
    backend: BackendConfig,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    timeout_s: float = TIMEOUT_S,
) -> dict[str, Any]:
    """GET (or POST `body` to) a llama-server endpoint beside /v1, with the backend's key
    where it has one (llama-server started with --api-key wants it for /props too)."""
    data = json.dumps(body).encode() if body is not None else None
    # user info in the URL is Basic auth, as httpx sends it (urllib would look it up as
    # part of the host name); the backend's key, where it has one, wins
    url, basic = without_userinfo(endpoint(root(backend), path))
    request = urllib.request.Request(url, data=data)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    key = os.environ.get(backend.api_key_env) if backend.api_key_env else None
    if key or basic:
        request.add_header("Authorization", f"Bearer {key}" if key else str(basic))
    with urllib.request.urlopen(request, timeout=timeout_s) as resp:
        found = json.load(resp)
    if not isinstance(found, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return found


def loaded(name: str, backend: BackendConfig) -> list[LoadedModel]:
    """The models the server at `backend` holds now; raises `UNREACHABLE` errors, a
    ValueError where what answers lists no models the way llama-server does."""
    out = []
    listing = call_json(backend, "/models").get("data", [])
    if not isinstance(listing, list) or not all(isinstance(m, dict) for m in listing):
        raise ValueError("/models: not a list of models")
    for model in listing:
        meta = model.get("meta") or {}
        size = int(meta.get("size") or 0) if isinstance(meta, dict) else 0
        status = model.get("status")
        ident = str(model.get("id", "?"))
        aliases = _aliases(model.get("aliases"), ident)
        if isinstance(status, dict):  # router mode
            if status.get("value") == "loaded":
                size = size or _file_bytes(backend, status.get("args") or [])
                out.append(LoadedModel(name, ident, size // MB, aliases=aliases))
        else:
            size = size or _served_bytes(backend)
            out.append(LoadedModel(name, ident, size // MB, unloadable=False, aliases=aliases))
    return out


def _aliases(listed: Any, ident: str) -> tuple[str, ...]:
    """The other names a listing gives a model (`"aliases": ["writer"]`), its id left out."""
    if not isinstance(listed, list):
        return ()
    return tuple(dict.fromkeys(a for a in listed if isinstance(a, str) and a and a != ident))


def unload(backend: BackendConfig, model: str) -> bool:
    """`POST /models/unload`: True when the router accepted it, False when it refused."""
    try:
        answer = call_json(backend, "/models/unload", {"model": model}, timeout_s=UNLOAD_TIMEOUT_S)
    except urllib.error.HTTPError:  # 400 "model is not found"; 404 not a router
        return False
    return bool(answer.get("success", True))


def _file_bytes(backend: BackendConfig, args: list[Any]) -> int:
    """The size of the model file a router launches a model with, if it is on this machine."""
    words = [str(a) for a in args]
    for i, word in enumerate(words[:-1]):
        if word in ("-m", "--model"):
            try:
                return os.path.getsize(server_path(backend, words[i + 1]))
            except OSError:
                return 0
    return 0


def server_path(backend: BackendConfig, path: str) -> str:
    """`path` as the server at `backend` reads it: a relative one (`--models-dir models`)
    is relative to the server's working directory, found where the server listens on this
    machine's loopback and its process can be seen; otherwise `path` as given."""
    if os.path.isabs(path):
        return path
    cwd = _from_process(backend, lambda process: str(process.cwd()))
    return os.path.join(cwd, path) if cwd else path


def launch_settings(backend: BackendConfig) -> tuple[list[str], dict[str, str]] | None:
    """The command line and llama.cpp's own variables (`LLAMA_ARG_*`) from the environment
    of the server at `backend`, where it listens on this machine's loopback and its process
    can be seen (another user's environment cannot: then none); None otherwise. Nothing
    else of the environment is kept: it may hold keys."""
    return _from_process(backend, _settings)


def _settings(process: Any) -> tuple[list[str], dict[str, str]]:
    import psutil  # noqa: PLC0415

    args = [str(word) for word in process.cmdline()]
    try:
        environment = process.environ()
    except (psutil.Error, OSError):
        return args, {}
    return args, {k: v for k, v in environment.items() if k.startswith("LLAMA_ARG_")}


def _from_process(backend: BackendConfig, read: Callable[[Any], T]) -> T | None:
    """`read` of the `psutil.Process` that listens on `backend`'s loopback port, or None
    when there is no such process or it cannot be read."""
    parts = urllib.parse.urlsplit(backend.base_url or "")
    if parts.hostname not in ("127.0.0.1", "localhost", "::1") or parts.port is None:
        return None
    import psutil  # noqa: PLC0415  # only a local server's own process needs the table

    try:
        for conn in psutil.net_connections(kind="tcp"):
            port = getattr(conn.laddr, "port", None)  # an empty tuple when there is none
            if conn.status == psutil.CONN_LISTEN and port == parts.port and conn.pid:
                return read(psutil.Process(conn.pid))
    except (psutil.Error, OSError):
        pass
    return None


def _served_bytes(backend: BackendConfig) -> int:
    """The weights of a single-model server's GGUF file, for servers whose listing has no size."""
    from devpulse.plugins.preflight.estimator import ModelUnknown, read_gguf  # noqa: PLC0415

    try:
        path = call_json(backend, "/props").get("model_path")
        return read_gguf(path).weights_bytes if isinstance(path, str) and path else 0
    except (ModelUnknown, *UNREACHABLE):
        return 0
