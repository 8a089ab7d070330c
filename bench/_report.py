"""The printed table, the ratios against raw httpx2 (and the anthropic SDK), the targets,
and the JSON file."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import BASELINE, Result, Settings

SECTIONS = {
    "sync": "1. Sequential non-streaming requests (short prompt, small JSON reply)",
    "stream": "2. Streamed text chunks (one long reply per request)",
    "async": "3. Async requests, 64 in flight",
    "anthropic-sync": "4a. Anthropic Messages API: sequential non-streaming requests",
    "anthropic-stream": "4b. Anthropic Messages API: streamed text chunks",
    "policies": "5. callm's policies: sequential non-streaming requests, all off vs all on",
    "imports": "6. Import wall time (fresh interpreter, median)",
    "sse-huge": "7a. SSE decoding alone: one 64 MiB event in 64 KiB chunks (quick: 8 in 8)",
    "sse-stream": "7b. SSE decoding alone: 20,000 Chat Completions chunks in 16 KiB reads",
}
#: The row each section's ratio column divides by (raw httpx2 unless named here).
BASES = {"policies": "callm-bare", "sse-huge": "openai", "sse-stream": "openai"}
BASE_HEADERS = {"callm-bare": "x off"}
#: Sections with a peer that callm is compared with besides raw httpx2: section -> client.
PEERS = {"anthropic-sync": "anthropic", "anthropic-stream": "anthropic"}
PEER_NAMES = {"anthropic": "anthropic SDK"}
LABELS = {
    "sync": {
        "callm": "callm.Client (urllib3)",
        "callm-httpx2": "callm.Client(http_client=httpx2)",
        "httpx2": "raw httpx2.Client",
        "urllib3": "raw urllib3.PoolManager",
        "openai": "openai.OpenAI",
        "litellm": "litellm.completion",
    },
    "stream": {
        "callm": "callm Client.stream (urllib3)",
        "callm-httpx2": "callm Client.stream (httpx2)",
        "httpx2": "raw httpx2 stream + iter_lines",
        "openai": "openai.OpenAI stream",
        "litellm": "litellm.completion(stream=True)",
    },
    "async": {
        "callm": "callm.AsyncClient (aiohttp)",
        "callm-httpx2": "callm.AsyncClient(http_client=httpx2)",
        "httpx2": "raw httpx2.AsyncClient",
        "aiohttp": "raw aiohttp.ClientSession",
        "openai": "openai.AsyncOpenAI",
        "litellm": "litellm.acompletion",
    },
    "anthropic-sync": {
        "callm": "callm.Client (anthropic, urllib3)",
        "httpx2": "raw httpx2.Client (/v1/messages)",
        "urllib3": "raw urllib3.PoolManager (/v1/messages)",
        "anthropic": "anthropic.Anthropic messages.create",
    },
    "anthropic-stream": {
        "callm": "callm Client.stream (anthropic, urllib3)",
        "httpx2": "raw httpx2 stream + iter_lines",
        "anthropic": "anthropic SDK create(stream=True)",
    },
    "policies": {
        "callm-bare": "callm.Client, policies off",
        "callm-policies": "callm.Client, log + rate limits + cost",
    },
    "sse-huge": {
        "callm": "callm SSEDecoder.feed",
        "openai": "openai SDK SSEDecoder.iter_bytes",
    },
    "sse-stream": {
        "callm": "callm SSEDecoder.feed",
        "openai": "openai SDK SSEDecoder.iter_bytes",
        "anthropic": "anthropic SDK SSEDecoder.iter_bytes",
    },
    "imports": {
        "baseline": "python -c pass",
        "callm": "import callm",
        "httpx2": "import httpx2",
        "openai": "import openai",
        "litellm": "import litellm",
    },
}
PER_UNIT = {
    "sync": "µs/req",
    "stream": "µs/chunk",
    "async": "µs/req",
    "anthropic-sync": "µs/req",
    "anthropic-stream": "µs/chunk",
    "policies": "µs/req",
    "sse-huge": "µs/MB",
    "sse-stream": "µs/MB",
}


@dataclass(frozen=True)
class Target:
    section: str
    label: str
    minimum: float | None  # ratio ours / against must be >= minimum (None: imports)
    against: str = BASELINE
    ours: str = "callm"
    show_median: bool = False  # also print the ratio of the medians (met is on the best)

    def ratio(self, results: dict[str, dict[str, Result]]) -> float | None:
        """ours / against (best rounds; medians for import times), None if not measured."""
        section = results.get(self.section, {})
        ours, theirs = section.get(self.ours), section.get(self.against)
        if ours is None or theirs is None or ours.value is None or not theirs.value:
            return None
        return round(ours.value / theirs.value, 3)

    def check(self, results: dict[str, dict[str, Result]]) -> tuple[str, bool | None]:
        section = results.get(self.section, {})
        ours, theirs = section.get(self.ours), section.get(self.against)
        if ours is None or theirs is None or ours.value is None or theirs.value is None:
            return "not measured", None
        if self.minimum is None:
            met = ours.value <= theirs.value
            return f"callm {ours.value:.0f} ms vs httpx2 {theirs.value:.0f} ms (<=)", met
        ratio = ours.value / theirs.value
        met = ratio >= self.minimum
        median = ""
        if self.show_median and ours.median is not None and theirs.median:
            median = f", median {ours.median / theirs.median:.2f}x"
        return f"{ratio:.2f}x{median} (target >= {self.minimum:.2f}x)", met


TARGETS = (
    Target("sync", "non-streaming req/s, callm vs raw httpx2.Client", 1.0),
    Target("stream", "streamed chunks/s, callm vs raw httpx2 stream", 0.9),
    Target("async", "async req/s @64, callm vs raw httpx2.AsyncClient", 4.0),
    Target(
        "anthropic-sync", "anthropic non-streaming req/s, callm vs anthropic SDK", 3.0, "anthropic"
    ),
    Target(
        "anthropic-stream", "anthropic streamed chunks/s, callm vs anthropic SDK", 3.0, "anthropic"
    ),
    Target(
        "policies",
        "non-streaming req/s, callm policies on vs off",
        0.9,
        "callm-bare",
        ours="callm-policies",
        show_median=True,
    ),
    Target("imports", "import callm <= import httpx2", None),
    # Linear decoding: within 2x of openai-python's decoder on a huge event.
    Target("sse-huge", "SSE MB/s, one huge event, callm vs openai SDK", 0.5, "openai"),
    Target("sse-stream", "SSE MB/s, typical stream, callm vs openai SDK", 0.5, "openai"),
)


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def render(results: dict[str, dict[str, Result]]) -> str:
    lines: list[str] = []
    for section, title in SECTIONS.items():
        rows = results.get(section)
        if not rows:
            continue
        lines += ["", title]
        base_name = BASES.get(section, BASELINE)
        base = rows.get(base_name)
        base_value = base.value if base else None
        first = next(iter(rows.values()))
        per = PER_UNIT.get(section, "net ms")
        second = "" if section == "imports" else "median"
        ratio_header = BASE_HEADERS.get(base_name, f"x {base_name}")
        lines.append(
            f"  {'client':<40}{first.statistic + ' ' + first.unit:>14}{second:>10}{per:>10}"
            f"{ratio_header:>10}  rounds"
        )
        for name, result in rows.items():
            label = LABELS[section].get(name, name)
            if result.value is None:
                lines.append(f"  {label:<40}{'—':>14}  {result.error or 'no figure'}")
                continue
            value = result.value
            if section == "imports":
                net = result.detail.get("net_ms")
                extra = f"{'':>10}" + (f"{net:>10.1f}" if net is not None else f"{'':>10}")
            else:
                extra = f"{_fmt(result.median or 0):>10}" + (
                    f"{1e6 / value:>10.1f}" if value else f"{'':>10}"
                )
            ratio = f"{value / base_value:.2f}x" if base_value and name != "baseline" else ""
            spread = f"n={len(result.rounds)} {min(result.rounds):,.0f}..{max(result.rounds):,.0f}"
            note = _note(result)
            lines.append(f"  {label:<40}{_fmt(value):>14}{extra}{ratio:>10}  {spread}{note}")
        if section in PEERS:
            lines.append(_peer_line(section, rows))
        if section == "policies":
            lines.append(_policies_line(rows))
    lines += ["", "Targets"]
    for target in TARGETS:
        text, met = target.check(results)
        mark = {True: "MET", False: "NOT MET", None: "—"}[met]
        lines.append(f"  {target.label:<54} {text:<38} {mark}")
    return "\n".join(lines)


def peer_ratios(section: str, rows: dict[str, Result]) -> dict[str, float | None]:
    """``callm / peer``, ``callm / raw httpx2`` and ``peer / raw httpx2`` of one section."""
    peer = PEERS[section]
    names = {peer: PEER_NAMES.get(peer, peer), BASELINE: f"raw {BASELINE}", "callm": "callm"}
    out: dict[str, float | None] = {}
    for top, bottom in (("callm", peer), ("callm", BASELINE), (peer, BASELINE)):
        a, b = rows.get(top), rows.get(bottom)
        ours = a.value if a else None
        theirs = b.value if b else None
        ratio = round(ours / theirs, 3) if ours is not None and theirs else None
        out[f"{names[top]} / {names[bottom]}"] = ratio
    return out


def _peer_line(section: str, rows: dict[str, Result]) -> str:
    parts = [
        f"{label}: {'—' if ratio is None else f'{ratio:.2f}x'}"
        for label, ratio in peer_ratios(section, rows).items()
    ]
    return "  " + "   ".join(parts)


def _policy_ratios(rows: dict[str, Result]) -> dict[str, float | None]:
    from _policies import ratios

    got = ratios(rows)
    return {"policies on / off (best)": got["best"], "policies on / off (median)": got["median"]}


def _policies_line(rows: dict[str, Result]) -> str:
    from _policies import ON, ratios

    got = ratios(rows)
    parts = [
        f"{label}: {'—' if got[key] is None else f'{got[key]:.3f}x'}"
        for key, label in (("best", "on / off (best)"), ("median", "on / off (median)"))
    ]
    on = rows.get(ON)
    if on is not None and on.detail.get("logged_calls") is not None:
        parts.append(f"rows in the call log: {on.detail['logged_calls']:,}")
    return "  " + "   ".join(parts)


def _note(result: Result) -> str:
    chunks = result.detail.get("chunks_per_stream")
    return f"  [{'/'.join(map(str, chunks))} chunks/stream]" if chunks else ""


def unavailable_lines(results: dict[str, dict[str, Result]]) -> list[str]:
    """One "LiteLLM: not available (reason)" line per missing peer."""
    names = {
        "litellm": "LiteLLM",
        "openai": "openai SDK",
        "anthropic": "anthropic SDK",
        "httpx2": "httpx2",
    }
    out: list[str] = []
    for name, pretty in names.items():
        for rows in results.values():
            result = rows.get(name)
            if result and result.error and result.error.startswith("not available"):
                out.append(f"{pretty}: {result.error}")
                break
    return out


def write_json(
    path: Path, results: dict[str, dict[str, Result]], settings: Settings, meta: dict[str, Any]
) -> None:
    targets = {}
    for target in TARGETS:
        text, met = target.check(results)
        targets[target.section] = {
            "label": target.label,
            "result": text,
            "ratio": target.ratio(results),
            "minimum": target.minimum,
            "met": met,
        }
    ratios = {s: peer_ratios(s, results[s]) for s in PEERS if results.get(s)}
    if results.get("policies"):
        ratios["policies"] = _policy_ratios(results["policies"])
    document = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "quick": settings.quick,
        "rounds": {
            "sync": settings.sync_rounds,
            "stream": settings.stream_rounds,
            "async": settings.async_rounds,
            "anthropic-sync": settings.sync_rounds,
            "anthropic-stream": settings.stream_rounds,
            "policies": settings.policies_rounds,
        },
        **meta,
        "results": {
            section: {name: r.as_json() for name, r in rows.items()}
            for section, rows in results.items()
        },
        "ratios": ratios,
        "targets": targets,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
