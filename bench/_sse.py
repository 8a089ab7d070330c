"""Section 7: Server-Sent Events decoding alone, bytes in and events out, no network.

callm's decoder (``callm.protocols._shared.sse.SSEDecoder``) against the one inside the
official openai SDK (``openai._streaming.SSEDecoder``), and the anthropic SDK's where it
finishes in reasonable time, on the same chunks held in memory:

- ``sse-huge``: one 64 MiB event arriving in 64 KiB chunks (8 MiB in 8 KiB chunks with
  ``--quick``) — the case a decoder that rebuilds its buffer per chunk makes quadratic;
- ``sse-stream``: a typical long stream, 20,000 Chat Completions chunks of ~150 bytes, cut
  into 16 KiB reads.

The figure is MB of stream decoded per second (best round); every decoder must produce the
same events, or its row reports the mismatch instead of a figure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from _common import Result, describe, settle

Decoder = Callable[[list[bytes]], tuple[int, int]]


def _callm(chunks: list[bytes]) -> tuple[int, int]:
    from callm.protocols._shared.sse import SSEDecoder

    decoder = SSEDecoder()
    count = size = 0
    for chunk in chunks:
        for event in decoder.feed(chunk):
            count += 1
            size += len(event.data)
    for event in decoder.close():
        count += 1
        size += len(event.data)
    return count, size


def _sdk(module: str) -> Decoder:
    def decode(chunks: list[bytes]) -> tuple[int, int]:
        import importlib

        decoder = importlib.import_module(f"{module}._streaming").SSEDecoder()
        count = size = 0
        for event in decoder.iter_bytes(iter(chunks)):
            count += 1
            size += len(event.data)
        return count, size

    return decode


DECODERS: dict[str, Decoder] = {
    "callm": _callm,
    "openai": _sdk("openai"),
    "anthropic": _sdk("anthropic"),
}


def _cut(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def huge_event(quick: bool) -> list[bytes]:
    """One event of 64 MiB (8 MiB quick) of JSON text, in 64 KiB (8 KiB) chunks."""
    mib, piece = (8, 8 * 1024) if quick else (64, 64 * 1024)
    text = "0123456789abcdef" * (mib * 1024 * 1024 // 16)
    frame = b'data: {"choices":[{"delta":{"content":"' + text.encode() + b'"}}]}\n\n'
    return _cut(frame, piece)


def typical_stream(quick: bool) -> list[bytes]:
    """Chat Completions chunks of one word each, as a long reply streams, in 16 KiB reads."""
    count = 4_000 if quick else 20_000
    frames = []
    for i in range(count):
        chunk = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": f" w{i}"}, "finish_reason": None}],
        }
        frames.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    return _cut(b"".join(frames), 16 * 1024)


def _round(decode: Decoder, chunks: list[bytes], result: Result) -> None:
    total = sum(len(c) for c in chunks) / 1e6
    settle()
    started = time.perf_counter()
    got = decode(chunks)
    elapsed = time.perf_counter() - started
    result.detail["events"], result.detail["data_chars"] = got
    result.rounds.append(total / elapsed)


def run_one(chunks: list[bytes], rounds: int, names: list[str]) -> dict[str, Result]:
    """MB/s of each decoder on ``chunks``; rounds interleaved, results checked alike."""
    results = {n: Result(n, "MB/s") for n in names}
    for _ in range(rounds):
        for name in names:
            result = results[name]
            if result.error:
                continue
            try:
                _round(DECODERS[name], chunks, result)
            except ImportError as exc:
                result.error = f"not available ({describe(exc)})"
    expected = results["callm"].detail.get("events"), results["callm"].detail.get("data_chars")
    for result in results.values():
        got = result.detail.get("events"), result.detail.get("data_chars")
        if not result.error and got != expected:
            result.error = f"decoded {got} (events, chars), callm {expected}"
    for result in results.values():
        result.detail["mb"] = round(sum(len(c) for c in chunks) / 1e6, 1)
        result.detail["chunks"] = len(chunks)
    return results


def run(quick: bool, clients: list[str]) -> dict[str, dict[str, Result]]:
    """Both workloads; the anthropic SDK's decoder is left out of the huge event (it joins
    bytes once per line and takes minutes there)."""
    names = [n for n in DECODERS if n in clients or n == "callm"]
    rounds = 2 if quick else 5
    return {
        "sse-huge": run_one(huge_event(quick), rounds, [n for n in names if n != "anthropic"]),
        "sse-stream": run_one(typical_stream(quick), rounds, names),
    }


def _main() -> None:  # pragma: no cover - a manual entry point
    import sys

    for section, rows in run("--quick" in sys.argv, list(DECODERS)).items():
        print(section)
        for name, result in rows.items():
            shown = f"{result.value:8.1f} MB/s" if result.value else result.error
            print(f"  {name:<10} {shown}  {result.detail}")


if __name__ == "__main__":
    _main()
