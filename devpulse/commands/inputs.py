"""What commands read from files and stdin: bounded by `input.max_bytes`, decoded as UTF-8
(or UTF-16 and UTF-32, where the text says so); and the bounds on numbers given as options.

Text from a file or stdin is read as bytes and decoded with replacement characters, so no
input makes a command crash on its encoding or hand a backend unencodable text.
"""

from __future__ import annotations

import codecs
import math
import sys
from typing import Any, BinaryIO

import click

from devpulse.core.errors import DevPulseError
from devpulse.core.exitcodes import ExitCode

CHUNK = 1024 * 1024
# How much of a file decides whether it is binary (NUL bytes): git's and gitleaks' 8000-byte
# look, rounded up.
PROBE_BYTES = 8192


class InputError(DevPulseError):
    """What a command was given to read cannot be read."""

    exit_code = ExitCode.USAGE


class InputTooLarge(InputError):
    """A file or stdin holds more than `input.max_bytes`."""


def read_bounded(stream: BinaryIO, limit: int, name: str, *, already: int = 0) -> bytes:
    """The rest of `stream`; `InputTooLarge` as soon as it passes `limit` bytes in all.

    `already` counts bytes the caller read from the stream before. At most ``limit + 1``
    bytes are ever read, so an endless stream (``/dev/zero``) stops at the limit.
    """
    chunks: list[bytes] = []
    total = already
    while total <= limit:
        chunk = stream.read(min(CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
    raise _too_large(name, limit)


def _too_large(name: str, limit: int) -> InputTooLarge:
    return InputTooLarge(
        f"{name} is larger than input.max_bytes ({limit} bytes); "
        "raise [input] max_bytes in the config to read it"
    )


def as_text(data: bytes) -> str:
    """`data` as text in its encoding (`encoding_of`), with a replacement character for
    every byte that is not of it."""
    return data.decode(encoding_of(data[:PROBE_BYTES]), "replace")


# The share of a UTF-16 text's bytes, in its first PROBE_BYTES, that are NUL where ASCII's
# high byte stands (every other byte), and at most the share NUL where its low byte does.
UTF16_HIGH_NULS = 0.7
UTF16_LOW_NULS = 0.1


def encoding_of(head: bytes) -> str:
    """The encoding of text that starts with `head`: UTF-32 or UTF-16 where a byte-order
    mark says so, UTF-16 without one where NULs stand at every other byte (text that is
    mostly ASCII), else UTF-8. Windows PowerShell 5.1's `>` writes UTF-16 with a mark: read
    as UTF-8, every character had a NUL after it, and no secret in it was found."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    pairs = len(head) // 2
    if pairs >= 2:
        low, high = head[: 2 * pairs : 2].count(0), head[1 : 2 * pairs : 2].count(0)
        if high >= UTF16_HIGH_NULS * pairs and low <= UTF16_LOW_NULS * pairs:
            return "utf-16-le"
        if low >= UTF16_HIGH_NULS * pairs and high <= UTF16_LOW_NULS * pairs:
            return "utf-16-be"
    return "utf-8"


def without_surrogates(value: str) -> str:
    """`value` with replacement characters for the bytes that were not UTF-8.

    Python hands such bytes of a command-line argument (or a stream decoded with
    ``surrogateescape``) over as lone surrogates, which no backend can encode.
    """
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def read_stdin(limit: int) -> str:
    """All of stdin as text, bounded like a file."""
    if sys.stdin is None:  # started with stdin closed (<&-)
        raise InputError("stdin is closed")
    binary = getattr(sys.stdin, "buffer", None)
    if binary is not None:
        return as_text(read_bounded(binary, limit, "stdin"))
    text = sys.stdin.read(limit + 1)  # a text stream put in place of stdin (tests, embedding)
    if len(text.encode("utf-8", "surrogatepass")) > limit:
        raise _too_large("stdin", limit)
    return without_surrogates(text)


def binary_reason(head: bytes) -> str | None:
    """Why a file starting with `head` is binary rather than text, or None if it is not
    (UTF-16 and UTF-32 text holds NULs: `encoding_of`)."""
    if b"\0" in head[:PROBE_BYTES] and encoding_of(head[:PROBE_BYTES]).startswith("utf-8"):
        return f"binary: NUL bytes in the first {PROBE_BYTES // 1024} KB"
    return None


# The most a count or a length given on the command line may be: far above any real use
# (a trillion requests a day, a hundred million tokens), and far below where arithmetic on
# it would overflow a float.
MAX_COUNT = 10**12
MAX_TOKENS = 10**8
MAX_SECONDS = 7 * 24 * 3600.0  # a week: a longer wait or interval is a mistake


class Finite(click.FloatRange):
    """A float in [min, max] that is a number: FloatRange lets nan through its bounds."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"{value!r} is not a number.", param, ctx)
        return number
