"""Read a GGUF file's metadata and tensor sizes without touching its tensor data.

gguf's `GGUFReader` maps every array element (a 262k-token vocabulary included) and takes
about 12 s on the rig's Gemma file; a preflight must answer in milliseconds. This streams
the header with the gguf package's own type tables, skips arrays it does not need, and sums
tensor sizes from their shapes and quantization block sizes.
"""

from __future__ import annotations

import os
import struct
from typing import Any, BinaryIO

from gguf import GGML_QUANT_SIZES, GGUF_MAGIC, GGMLQuantizationType, GGUFValueType

SCALARS = {
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}
MAX_KEPT_ARRAY = 4096  # longer arrays are reported by length only
# Real models nest arrays one level deep at most; a crafted file could nest them thousands
# deep and exhaust Python's recursion limit.
MAX_NESTING = 8


class GGUFError(ValueError):
    """Not a GGUF file this reader understands."""


def read_metadata(path: str | os.PathLike[str]) -> tuple[dict[str, Any], int]:
    """The metadata (long arrays as `<key>.count`) and the total bytes of tensor data."""
    with open(path, "rb") as fh:
        if _unpack(fh, "<I") != GGUF_MAGIC:
            raise GGUFError("bad magic number")
        version = _unpack(fh, "<I")
        if version < 2:
            raise GGUFError(f"GGUF version {version} is too old")
        tensors, kv_count = _unpack(fh, "<Q"), _unpack(fh, "<Q")
        meta: dict[str, Any] = {}
        for _ in range(kv_count):
            key = _string(fh)
            value_type = GGUFValueType(_unpack(fh, "<I"))
            if value_type is GGUFValueType.ARRAY:
                items = _array(fh)
                if isinstance(items, int):
                    meta[f"{key}.count"] = items
                else:
                    meta[key] = items
            else:
                meta[key] = _value(fh, value_type)
        return meta, sum(_tensor_bytes(fh) for _ in range(tensors))


def _unpack(fh: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise GGUFError("truncated file")
    return struct.unpack(fmt, data)[0]


def _string(fh: BinaryIO) -> str:
    length = _unpack(fh, "<Q")
    if length > 1 << 20:
        raise GGUFError("implausible string length")
    return fh.read(length).decode("utf-8", "replace")


def _value(fh: BinaryIO, value_type: GGUFValueType) -> Any:
    if value_type is GGUFValueType.STRING:
        return _string(fh)
    return _unpack(fh, SCALARS[value_type])


def _array(fh: BinaryIO, depth: int = 1) -> list[Any] | int:
    """The array's items, or only its length when it is long (vocabularies, merges)."""
    if depth > MAX_NESTING:
        raise GGUFError(f"arrays nested too deeply (over {MAX_NESTING} levels)")
    item_type = GGUFValueType(_unpack(fh, "<I"))
    count = _unpack(fh, "<Q")
    if count <= MAX_KEPT_ARRAY:
        if item_type is GGUFValueType.ARRAY:
            return [_array(fh, depth + 1) for _ in range(count)]
        return [_value(fh, item_type) for _ in range(count)]
    if item_type is GGUFValueType.STRING:
        for _ in range(count):
            fh.seek(_unpack(fh, "<Q"), os.SEEK_CUR)
    elif item_type in SCALARS:
        fh.seek(count * struct.calcsize(SCALARS[item_type]), os.SEEK_CUR)
    else:
        raise GGUFError("nested long arrays are not supported")
    return int(count)


def _tensor_bytes(fh: BinaryIO) -> int:
    _string(fh)  # name
    dims = [_unpack(fh, "<Q") for _ in range(_unpack(fh, "<I"))]
    qtype = GGMLQuantizationType(_unpack(fh, "<I"))
    _unpack(fh, "<Q")  # offset
    block, size = GGML_QUANT_SIZES[qtype]
    elements = 1
    for dim in dims:
        elements *= dim
    return elements // block * size
