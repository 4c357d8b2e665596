"""What a model needs in memory: weights + KV cache at a context + compute + runtime overhead.

The KV cache is `2 x layers x cells x kv_heads x head_dim x bytes`, summed per layer, with
head_dim read from the GGUF `key_length`/`value_length` keys (never derived from the
embedding width) and sliding-window layers counted at their window: llama.cpp keeps
`min(ctx, window + ubatch)` cells for those (Gemma 3: 15 of 18 layers at window 512), per
server slot. With several slots (llama-server's `-np`) the full layers still hold `ctx`
cells in all, but the window is kept once per slot: `window x slots + ubatch` cells in one
unified cache (`-kvu`, the default when llama-server picks the slot count itself), or
`window + ubatch` in each slot's own cache. Measured on Gemma 3 270M with this build's
llama-server, whose log prints each cache's cells: `-c 8192 -np 4` keeps 8192 + 4 x 1024
cells, `-kvu` 8192 + 2560.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from devpulse.core.errors import ConfigError, DevPulseError

MIB = 1024 * 1024
UBATCH = 512  # llama.cpp's default physical batch (micro-batch, -ub)
BATCH = 2048  # llama.cpp's default logical batch (-b), which caps the micro-batch
MAX_BATCH = 1 << 20  # far above any real batch; a larger one is not believed
# Bytes per KV cache element by llama.cpp cache type (block formats include their scales).
KV_BYTES = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q5_1": 24 / 32,
    "q5_0": 22 / 32,
    "q4_1": 20 / 32,
    "q4_0": 18 / 32,
}
# Architectures whose sliding-window layers follow a fixed pattern in llama.cpp when the
# GGUF does not carry one: every Nth layer is global, the others use the window.
# (gpt-oss GGUFs carry `sliding_window` = 128 and no pattern: llama.cpp alternates.)
SWA_EVERY = {"gemma3": 6, "gemma3n": 5, "gemma2": 2, "cohere2": 4, "llama4": 4, "gpt-oss": 2}
# Sane maxima for the counts metadata gives (a GGUF file's, or a server's /api/show), far
# above any real model (126 layers, 128 KV heads, 262k tokens of vocabulary, 10M tokens of
# context): a crafted 200-byte file must not make the estimate loop or allocate per layer
# for seconds and gigabytes. A count outside them makes the model unknown.
MAX_LAYERS = 4096
MAX_HEADS = 1 << 16
MAX_WIDTH = 1 << 20  # embedding, key and value lengths
MAX_VOCAB = 1 << 24
MAX_CONTEXT = 1 << 30


class ModelUnknown(DevPulseError):
    """The model could not be found or described; the CLI turns this into exit 2."""

    exit_code = ConfigError.exit_code


@dataclass(frozen=True, slots=True)
class Architecture:
    """What the estimator needs to know about a model, from GGUF metadata or a catalog."""

    name: str
    arch: str
    layers: int
    kv_heads: int
    key_length: int
    value_length: int
    embedding: int
    vocab: int
    context_length: int
    weights_bytes: int
    sliding_window: int = 0
    swa_layers: tuple[bool, ...] = ()

    @classmethod
    def from_metadata(cls, name: str, meta: Mapping[str, Any], weights_bytes: int) -> Architecture:
        """From GGUF-style keys (`general.architecture`, `<arch>.block_count`, ...).

        Ollama's `/api/show` returns the same keys in `model_info`.
        """
        arch = str(meta.get("general.architecture", ""))

        def key(suffix: str, default: Any = None) -> Any:
            value = meta.get(f"{arch}.{suffix}", default)
            if value is None:
                raise ModelUnknown(f"{name}: metadata lacks {arch}.{suffix}")
            return value

        def count(suffix: str, most: int, default: Any = None, least: int = 0) -> int:
            return _count(name, f"{arch}.{suffix}", key(suffix, default), least, most)

        layers = count("block_count", MAX_LAYERS, least=1)
        heads = _per_layer(
            name, f"{arch}.attention.head_count", key("attention.head_count"), layers
        )
        kv_key = f"{arch}.attention.head_count_kv"
        kv_heads = _per_layer(name, kv_key, key("attention.head_count_kv", heads[0]), layers)
        embedding = count("embedding_length", MAX_WIDTH, least=1)
        head_dim = embedding // max(1, heads[0])
        window = _count(
            name,
            f"{arch}.attention.sliding_window",
            meta.get(f"{arch}.attention.sliding_window") or 0,
            0,
            MAX_CONTEXT,
        )
        return cls(
            name=name,
            arch=arch,
            layers=layers,
            kv_heads=max(kv_heads),
            key_length=count("attention.key_length", MAX_WIDTH, head_dim),
            value_length=count("attention.value_length", MAX_WIDTH, head_dim),
            embedding=embedding,
            vocab=_vocab_size(name, meta, arch),
            context_length=count("context_length", MAX_CONTEXT, 0),
            weights_bytes=weights_bytes,
            sliding_window=window,
            swa_layers=_swa_layers(name, meta, arch, layers) if window else (),
        )


@dataclass(frozen=True, slots=True)
class Estimate:
    """Megabytes (MiB) a model needs at a context, by part."""

    model: str
    ctx: int
    weights_mb: float
    kv_mb: float
    compute_mb: float
    overhead_mb: float
    source: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def need_mb(self) -> int:
        return math.ceil(self.weights_mb + self.kv_mb + self.compute_mb + self.overhead_mb)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "ctx": self.ctx,
            "need_mb": self.need_mb,
            "weights_mb": round(self.weights_mb, 1),
            "kv_cache_mb": round(self.kv_mb, 1),
            "compute_mb": round(self.compute_mb, 1),
            "overhead_mb": round(self.overhead_mb, 1),
            "source": self.source,
            **self.details,
        }


@dataclass(frozen=True, slots=True)
class Slots:
    """How a server lays out a model's KV cache: `count` slots that share one cache
    (`unified`) or each hold their own share of the context; with `swa_full` (llama-server's
    `--swa-full`) the window layers hold the whole context too. `ubatch` is the micro-batch
    it computes in (`-ub`), which the window layers and the compute buffers keep room for.
    `known`: read from the server's settings, not assumed."""

    count: int = 1
    unified: bool = True
    swa_full: bool = False
    ubatch: int = UBATCH
    known: bool = True


ONE_SLOT = Slots()
# What llama-server runs when its slot count is not given: 4 slots in one cache.
LLAMA_SERVER_DEFAULT = Slots(4)


def kv_cache_bytes(
    arch: Architecture, ctx: int, cache_type: str = "f16", slots: Slots = ONE_SLOT
) -> float:
    """Bytes of K and V cache at `ctx` tokens in all, with sliding-window layers at their
    window once per slot (in one cache: `window x slots + ubatch` cells; in a cache per
    slot: `window + ubatch` each, within the slot's share)."""
    per_cell = arch.kv_heads * (arch.key_length + arch.value_length) * KV_BYTES[cache_type]
    count = max(1, slots.count)
    if not arch.sliding_window or slots.swa_full:
        window_cells = ctx
    elif slots.unified:
        window_cells = min(ctx, _pad(arch.sliding_window * count + slots.ubatch))
    else:
        window_cells = count * min(ctx // count, _pad(arch.sliding_window + slots.ubatch))
    swa_count = sum(arch.swa_layers)
    return (swa_count * window_cells + (arch.layers - swa_count) * ctx) * per_cell


def check_cache_type(cache_type: str) -> None:
    """A ConfigError unless `cache_type` is a KV cache type llama.cpp has."""
    if cache_type not in KV_BYTES:
        raise ConfigError(
            f"preflight.kv_cache_type: unknown type {cache_type!r} "
            f"(expected one of {', '.join(KV_BYTES)})"
        )


def estimate(
    arch: Architecture,
    ctx: int,
    *,
    cache_type: str,
    overhead_mb: float,
    gpu: bool = False,
    slots: Slots = ONE_SLOT,
) -> Estimate:
    """The need of `arch` at `ctx` (the whole cache, laid out over `slots`).

    Compute buffers: on a GPU llama.cpp reserves room for a whole micro-batch of logits
    (`n_vocab x ubatch x 4` bytes) plus activations; on the CPU only the pages it touches
    count, which is about one micro-batch of activations and one row of logits.
    """
    check_cache_type(cache_type)
    activations = slots.ubatch * arch.embedding * 4 * 8
    logits = arch.vocab * 4 * (slots.ubatch if gpu else 1)
    swa_count = sum(arch.swa_layers)
    return Estimate(
        model=arch.name,
        ctx=ctx,
        weights_mb=arch.weights_bytes / MIB,
        kv_mb=kv_cache_bytes(arch, ctx, cache_type, slots) / MIB,
        compute_mb=(activations + logits) / MIB,
        overhead_mb=overhead_mb,
        source="architecture",
        details={
            "layers": arch.layers,
            "kv_heads": arch.kv_heads,
            "head_dim": arch.key_length,
            "sliding_window": arch.sliding_window or None,
            "sliding_window_layers": swa_count,
            "slots": max(1, slots.count),
            "kv_unified": slots.unified,
            "swa_full": slots.swa_full,
            "ubatch": slots.ubatch,
            "slots_known": slots.known,
        },
    )


def read_gguf(path: str | os.PathLike[str]) -> Architecture:
    """Architecture and tensor bytes of a GGUF file (header only; tensors are not read)."""
    # lazy: the gguf package's type tables come with numpy, which only reading a file needs
    from devpulse.plugins.preflight.gguf_meta import GGUFError, read_metadata  # noqa: PLC0415

    try:
        meta, weights = read_metadata(path)
    except FileNotFoundError:
        raise ModelUnknown(f"no such file: {path}") from None
    except IsADirectoryError:
        raise ModelUnknown(f"{path} is a directory, not a GGUF file") from None
    except PermissionError:
        raise ModelUnknown(f"cannot read {path}: permission denied") from None
    except (GGUFError, ValueError, KeyError, OSError) as exc:
        raise ModelUnknown(f"{path} is not a readable GGUF file ({exc})") from None
    name = os.path.basename(os.fspath(path))
    try:
        return Architecture.from_metadata(name, meta, weights)
    except ModelUnknown as exc:
        raise ModelUnknown(f"{path} is not a readable GGUF file ({exc})") from None


def llama_fit_params(spec: str, ctx: int) -> dict[str, int] | None:
    """llama.cpp's own projection for a GGUF file, when its `llama-fit-params` is on PATH.

    A cross-check: llama.cpp counts every buffer it allocates (its CPU compute buffer is
    mostly never touched, so resident memory on a CPU stays well below this figure).
    """
    tool = shutil.which("llama-fit-params")
    if tool is None or not spec.endswith(".gguf") or not os.path.isfile(spec):
        return None
    env = {**os.environ, "LD_LIBRARY_PATH": os.path.dirname(tool)}
    try:
        run = subprocess.run(
            [tool, "-m", spec, "-c", str(ctx), "-lv", "4"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    totals: dict[str, int] = {}
    for line in run.stderr.splitlines():
        match = FIT_LINE.search(line)
        if match:
            for key, value in zip(
                ("total_mb", "model_mb", "context_mb", "compute_mb"), match.groups(), strict=True
            ):
                totals[key] = totals.get(key, 0) + int(value)
    return totals or None


# Python's `re` is safe here: it reads llama-fit-params' own output, never a request's text.
FIT_LINE = re.compile(r"\|\s+- \S+\s+\|\s+(\d+) =\s+(\d+) \+\s+(\d+) \+\s+(\d+)")


def _count(name: str, key: str, value: Any, least: int, most: int) -> int:
    """`value` as a whole number from `least` to `most`, else the model is unknown (the
    message names the key and the value's type, never the value: it is untrusted text)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelUnknown(f"{name}: {key} is not a whole number ({type(value).__name__})")
    if not least <= value <= most:
        raise ModelUnknown(f"{name}: {key} = {value} is out of range ({least} to {most})")
    return value


def _per_layer(name: str, key: str, value: Any, layers: int) -> list[int]:
    """A count given once for every layer, or per layer as a list."""
    if isinstance(value, list | tuple):
        return [_count(name, key, v, 0, MAX_HEADS) for v in value[:layers]] or [0]
    return [_count(name, key, value, 0, MAX_HEADS)] * layers


def _vocab_size(name: str, meta: Mapping[str, Any], arch: str) -> int:
    for key in (f"{arch}.vocab_size", "tokenizer.ggml.tokens.count"):
        if meta.get(key):
            return _count(name, key, meta[key], 0, MAX_VOCAB)
    tokens = meta.get("tokenizer.ggml.tokens")
    return len(tokens) if isinstance(tokens, list | tuple) else 32000


def _swa_layers(name: str, meta: Mapping[str, Any], arch: str, layers: int) -> tuple[bool, ...]:
    key = f"{arch}.attention.sliding_window_pattern"
    pattern = meta.get(key)
    if isinstance(pattern, list | tuple):
        return tuple(bool(p) for p in pattern[:layers])
    every = _count(name, key, pattern, 0, MAX_LAYERS) if pattern else SWA_EVERY.get(arch, 0)
    if every <= 1:
        return (True,) * layers if every == 1 else ()
    return tuple((layer + 1) % every != 0 for layer in range(layers))


def _pad(cells: int, to: int = 256) -> int:
    return -(-cells // to) * to
