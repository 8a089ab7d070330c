"""Reading an embeddings reply: base64 float32 against JSON numbers (``encoding_format``).

One OpenAI ``/embeddings`` reply body of N vectors of D dimensions is built both ways (as
the fake server builds them) and decoded by callm's codec, the median of several rounds::

    .venv/bin/python bench/embed_decode.py            # 2048 x 1536, OpenAI's largest request
    .venv/bin/python bench/embed_decode.py --quick    # 256 x 1536
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import struct
import time

from callm._core.embeddings import EmbedRequest
from callm._core.endpoint import Endpoint
from callm._core.http import HttpResponse
from callm.protocols.openai_chat.embeddings import decode_embed_response


def body(n: int, d: int, encoding: str) -> bytes:
    rng = random.Random(7)
    data = []
    for i in range(n):
        vector = [rng.uniform(-0.1, 0.1) for _ in range(d)]
        if encoding == "base64":
            packed = base64.b64encode(struct.pack(f"<{d}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": packed})
        else:  # what a server sends: float32 values printed as JSON numbers
            values = struct.unpack(f"<{d}f", struct.pack(f"<{d}f", *vector))
            data.append({"object": "embedding", "index": i, "embedding": list(values)})
    usage = {"prompt_tokens": n, "total_tokens": n}
    return json.dumps({"object": "list", "data": data, "model": "m", "usage": usage}).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    n, d = (256, 1536) if args.quick else (2048, 1536)
    endpoint = Endpoint("openai", "openai_chat", "http://unused", {})
    request = EmbedRequest("m", ("x",) * n)
    print(f"{n} vectors x {d} dimensions, median of {args.rounds} rounds")
    for encoding in ("float", "base64"):
        raw = body(n, d, encoding)
        times = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            decode_embed_response(endpoint, request, HttpResponse(200, {}, raw))
            times.append(time.perf_counter() - started)
        ms = statistics.median(times) * 1000
        print(f"  {encoding:6}  body {len(raw) / 1e6:6.1f} MB   decode {ms:7.1f} ms")


if __name__ == "__main__":
    main()
