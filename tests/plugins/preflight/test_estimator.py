"""The estimator on the real Gemma GGUF and on metadata shaped like Ollama's /api/show."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from devpulse.plugins.preflight.estimator import (
    Architecture,
    ModelUnknown,
    Slots,
    estimate,
    kv_cache_bytes,
    read_gguf,
)
from tests.rig.llama_server import RigPaths

MIB = 1024 * 1024


@pytest.mark.parametrize(("ctx", "kv_mib"), [(2048, 21), (8192, 39), (32768, 111)])
def test_kv_cache_matches_llama_cpp_on_gemma3(rig: RigPaths, ctx: int, kv_mib: int) -> None:
    """llama.cpp's own memory breakdown (llama-fit-params) reports 21, 39 and 111 MiB."""
    arch = read_gguf(rig.model)
    assert (arch.layers, arch.kv_heads, arch.key_length, arch.sliding_window) == (18, 1, 256, 512)
    assert sum(arch.swa_layers) == 15
    assert kv_cache_bytes(arch, ctx) / MIB == pytest.approx(kv_mib, abs=0.5)


def test_weights_are_the_tensor_bytes(rig: RigPaths) -> None:
    arch = read_gguf(rig.model)
    assert 0.95 * rig.model.stat().st_size < arch.weights_bytes < rig.model.stat().st_size


@pytest.mark.parametrize(
    ("ctx", "slots", "unified", "kv_mib"),
    [(8192, 4, False, 84), (8192, 4, True, 61.5), (1024, 4, True, 18), (8192, 1, True, 39)],
)
def test_each_slot_keeps_its_own_window(
    rig: RigPaths, ctx: int, slots: int, unified: bool, kv_mib: float
) -> None:
    """Figures from llama-server's log on the rig's Gemma 3 270M (`-c 8192 -np 4`, with and
    without `-kvu`; `-c 1024 -np 4 -kvu`), where it prints the cells of each cache: the
    full layers hold `ctx` cells in all, the window layers a window per slot."""
    arch = read_gguf(rig.model)
    got = kv_cache_bytes(arch, ctx, slots=Slots(slots, unified)) / MIB
    assert got == pytest.approx(kv_mib, abs=0.01)
    # --swa-full: the window layers hold the whole context as well
    full = kv_cache_bytes(arch, ctx, slots=Slots(slots, unified, swa_full=True)) / MIB
    assert full == pytest.approx(18 * ctx * 1024 / MIB)


@pytest.mark.parametrize(
    ("ctx", "slots", "kv_mib"),
    [
        (8192, Slots(1, ubatch=1024), 24 + 22.5),  # -ub 1024: 512 + 1024 window cells
        (8192, Slots(2, unified=True, ubatch=256), 24 + 18.75),  # -kvu -ub 256: 1280
    ],
)
def test_the_window_keeps_room_for_the_micro_batch(
    rig: RigPaths, ctx: int, slots: Slots, kv_mib: float
) -> None:
    """llama-server's log on Gemma 3 270M at `-c 8192`: `-ub 1024`, and `-np 2 -kvu -ub 256`."""
    assert kv_cache_bytes(read_gguf(rig.model), ctx, slots=slots) / MIB == kv_mib


def test_gpt_oss_alternates_window_and_full_layers() -> None:
    """gpt-oss GGUFs give a window of 128 and no pattern; llama.cpp alternates the layers,
    so at 128k tokens half the layers hold 768 cells (the window and a micro-batch, padded),
    not 131072."""
    meta = {
        "general.architecture": "gpt-oss",
        "gpt-oss.block_count": 24,
        "gpt-oss.attention.head_count": 64,
        "gpt-oss.attention.head_count_kv": 8,
        "gpt-oss.attention.key_length": 64,
        "gpt-oss.attention.value_length": 64,
        "gpt-oss.embedding_length": 2880,
        "gpt-oss.context_length": 131072,
        "gpt-oss.attention.sliding_window": 128,
    }
    arch = Architecture.from_metadata("gpt-oss:20b", meta, 0)
    assert sum(arch.swa_layers) == 12
    per_cell_layer = 8 * (64 + 64) * 2
    assert kv_cache_bytes(arch, 131072) == (12 * 131072 + 12 * 768) * per_cell_layer


def llama_like(**overrides: object) -> dict:
    meta = {
        "general.architecture": "llama",
        "llama.block_count": 32,
        "llama.attention.head_count": 32,
        "llama.attention.head_count_kv": 8,
        "llama.embedding_length": 4096,
        "llama.context_length": 131072,
        "llama.vocab_size": 128256,
    }
    meta.update(overrides)
    return meta


def test_head_dim_comes_from_key_length_when_present() -> None:
    derived = Architecture.from_metadata("m", llama_like(), 0)
    assert derived.key_length == 128  # embedding / heads, only when the keys are absent
    explicit = Architecture.from_metadata(
        "m",
        llama_like(**{"llama.attention.key_length": 256, "llama.attention.value_length": 192}),
        0,
    )
    assert (explicit.key_length, explicit.value_length) == (256, 192)


def test_llama_31_8b_kv_is_128_mib_per_1k_tokens() -> None:
    arch = Architecture.from_metadata("llama3.1:8b", llama_like(), 0)
    assert kv_cache_bytes(arch, 1024) == 2 * 32 * 1024 * 8 * 128 * 2
    assert kv_cache_bytes(arch, 1024, "q8_0") < kv_cache_bytes(arch, 1024) / 1.8


def test_a_sliding_window_pattern_in_metadata_wins() -> None:
    meta = llama_like(
        **{
            "llama.attention.sliding_window": 4096,
            "llama.attention.sliding_window_pattern": [True, False] * 16,
        }
    )
    arch = Architecture.from_metadata("m", meta, 0)
    assert sum(arch.swa_layers) == 16
    full = kv_cache_bytes(Architecture.from_metadata("m", llama_like(), 0), 65536)
    assert kv_cache_bytes(arch, 65536) < 0.6 * full


def test_missing_keys_and_bad_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelUnknown, match=r"lacks llama\.block_count"):
        Architecture.from_metadata("m", {"general.architecture": "llama"}, 0)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelUnknown, match="not a readable GGUF file"):
        read_gguf(junk)
    with pytest.raises(ModelUnknown, match="no such file"):
        read_gguf(tmp_path / "missing.gguf")


def test_deeply_nested_arrays_are_a_clear_error_not_a_crash(tmp_path: Path) -> None:
    # One key whose value is an array of one array of one array ... 3000 deep.
    blob = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"x"
    blob += struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * 3000 + struct.pack("<IQ", 4, 0)
    nested = tmp_path / "nested.gguf"
    nested.write_bytes(blob)
    with pytest.raises(ModelUnknown, match=r"not a readable GGUF file.*nested too deeply"):
        read_gguf(nested)


def test_gpu_estimates_reserve_a_micro_batch_of_logits() -> None:
    arch = Architecture.from_metadata("m", llama_like(), 4 * 1024**3)
    cpu = estimate(arch, 4096, cache_type="f16", overhead_mb=90)
    gpu = estimate(arch, 4096, cache_type="f16", overhead_mb=90, gpu=True)
    assert gpu.compute_mb - cpu.compute_mb == pytest.approx(128256 * 4 * 511 / MIB, rel=0.01)
    with pytest.raises(Exception, match=r"preflight\.kv_cache_type"):
        estimate(arch, 4096, cache_type="f12", overhead_mb=90)


def header_only_gguf(path: Path, block_count: int | str) -> Path:
    """A GGUF file with llama metadata and no tensors (gguf's own writer): about 200 bytes."""
    from gguf import GGUFWriter  # noqa: PLC0415

    writer = GGUFWriter(str(path), "llama")
    if isinstance(block_count, str):
        writer.add_string("llama.block_count", block_count)
    else:
        writer.add_uint32("llama.block_count", block_count)
    writer.add_uint32("llama.attention.head_count", 32)
    writer.add_uint32("llama.embedding_length", 4096)
    writer.add_uint32("llama.context_length", 8192)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize(
    ("block_count", "reason"),
    [
        ("thirty-two", "llama.block_count is not a whole number (str)"),
        (0, "llama.block_count = 0 is out of range"),
        (2**27, "llama.block_count = 134217728 is out of range"),  # seconds and GBs, unbounded
        (2**32 - 1, "llama.block_count = 4294967295 is out of range"),  # a MemoryError
    ],
)
def test_malformed_metadata_is_an_unreadable_file_with_its_reason(
    tmp_path: Path, capsys, block_count: int | str, reason: str
) -> None:
    from devpulse.cli import main  # noqa: PLC0415

    bad = header_only_gguf(tmp_path / "bad.gguf", block_count)
    with pytest.raises(ModelUnknown, match="not a readable GGUF file") as raised:
        read_gguf(bad)
    assert reason in str(raised.value)
    code = main(["ai", "--before-load", str(bad)])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert f"{bad} is not a readable GGUF file (bad.gguf: {reason}" in err


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("llama.attention.head_count_kv", [8, "x"], "is not a whole number (str)"),
        ("llama.embedding_length", 4096.5, "is not a whole number (float)"),
        ("llama.vocab_size", 2**40, "out of range"),
        ("llama.attention.sliding_window", -1, "out of range"),
        ("llama.attention.key_length", True, "is not a whole number (bool)"),
    ],
)
def test_metadata_from_a_server_is_checked_the_same_way(
    key: str, value: object, reason: str
) -> None:
    """Ollama's /api/show gives the same keys, on the request path."""
    with pytest.raises(ModelUnknown) as raised:
        Architecture.from_metadata("llama3.1:8b", llama_like(**{key: value}), 0)
    assert str(raised.value).startswith(f"llama3.1:8b: {key} ")
    assert reason in str(raised.value)


def test_a_served_context_that_is_no_count_is_left_out() -> None:
    from devpulse.plugins.preflight.servers import _router_model  # noqa: PLC0415

    def served(ctx: str) -> int | None:
        entry = {"id": "m", "status": {"args": ["--model", "/m.gguf", "-c", ctx]}}
        return _router_model({"data": [entry]}, "m", "router").ctx

    assert served("8192") == 8192
    assert served("9" * 5000) is None  # int() of it would raise; 4000 digits would overflow
    assert served("٣٢") is None  # Arabic-Indic digits: isdigit(), but not llama-server's
    assert served("-5") is None


@pytest.mark.parametrize(
    ("args", "environment", "slots", "unified"),
    [
        ([], {}, 4, True),  # llama-server picks the count: 4 slots in one cache
        (["-np", "-1"], {}, 4, True),
        (["-np", "2"], {}, 2, False),  # a count given: a cache per slot
        (["--parallel", "8", "-kvu"], {}, 8, True),
        (["-kvu", "-np", "3", "--no-kv-unified"], {}, 3, False),  # the last flag wins
        (["-np", "99999"], {}, 4, True),  # not believed: as if not given
        (["-np", "two"], {}, 4, True),
        ([], {"LLAMA_ARG_N_PARALLEL": "4"}, 4, False),  # the environment's -np
        (["-np", "4"], {"LLAMA_ARG_KV_UNIFIED": "true"}, 4, True),
        (["-np", "4", "-no-kvu"], {"LLAMA_ARG_KV_UNIFIED": "1"}, 4, False),  # argument wins
        (["-np", "2"], {"LLAMA_ARG_N_PARALLEL": "6"}, 2, False),
        ([], {"LLAMA_ARG_KV_UNIFIED": "off"}, 4, True),  # auto slots share one cache anyway
    ],
)
def test_a_routers_launch_settings_give_its_slots(
    args: list[str], environment: dict[str, str], slots: int, unified: bool
) -> None:
    """What llama-server does with each (checked against its log: `n_slots`, `kv_unified`)."""
    from devpulse.plugins.preflight.servers import _router_model  # noqa: PLC0415

    entry = {"id": "m", "status": {"args": ["--model", "/m.gguf", *args]}}
    served = _router_model({"data": [entry]}, "m", "router", environment)
    assert (served.slots.count, served.slots.unified) == (slots, unified)
    assert not served.slots.swa_full
    assert served.slots.ubatch == 512
    entry["status"]["args"].append("--swa-full")
    assert _router_model({"data": [entry]}, "m", "router", environment).slots.swa_full


@pytest.mark.parametrize(
    ("args", "environment", "ubatch"),
    [
        (["-ub", "1024"], {}, 1024),
        ([], {"LLAMA_ARG_UBATCH": "256"}, 256),
        (["-ub", "1024", "-b", "512"], {}, 512),  # llama.cpp: at most the batch
        (["--ubatch-size", "4096"], {}, 2048),  # the default batch caps it
        (["-ub", "many"], {}, 512),
    ],
)
def test_a_routers_micro_batch(args: list[str], environment: dict[str, str], ubatch: int) -> None:
    """What llama-server's log says for each (`n_ubatch`)."""
    from devpulse.plugins.preflight.servers import _router_model  # noqa: PLC0415

    entry = {"id": "m", "status": {"args": ["--model", "/m.gguf", *args]}}
    assert _router_model({"data": [entry]}, "m", "router", environment).slots.ubatch == ubatch
