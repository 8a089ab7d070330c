"""Two checkouts of callm, the same benchmark, one interleaved run: is the second slower?

    python bench/compare_trees.py --before ../prelayout --after .
    python bench/compare_trees.py --before ../prelayout --between ../midlayout --after .

Each tree is measured with its *own* ``.venv`` (``make dev`` and ``pip install -e
'.[bench]'`` in each; the venv's editable install decides which callm is imported) by *this*
harness (``bench/run.py`` next to this file), so only callm differs: same fake server
(replayed), same clients, same counts. Every section is one ``run.py`` subprocess per tree,
and the two trees alternate section by section, before/after then after/before in the next
pair (ABBA …), so a burst of load elsewhere on the machine falls on both alike.

Each case's figure of one run is the median of that run's rounds, both the wall-clock
throughput ``run.py`` prints and the CPU time of the benchmark process per request (or per
streamed chunk, or per import: the CPU of the child interpreter) — the CPU figure is the one
to trust on a loaded machine, where the wall clock mostly measures the other processes.
The table gives, per case, the median over the runs of each tree with their range, and
``after / before``: the median of the pairs' ratios (a pair is one run of each tree, back
to back) with their range. ``--between`` trees (a step of the change) are run in the same
rotation and compared with ``--before`` the same way. ``x httpx2`` divides callm by raw
httpx2 measured in the same run, the figure the README quotes (``policies``: on / off). The
load average at the start of every run is printed and kept in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: (section of run.py's results, client) compared; imports are ms (lower is better).
CASES = (
    ("sync", "callm"),
    ("sync", "callm-httpx2"),
    ("stream", "callm"),
    ("async", "callm"),
    ("anthropic-sync", "callm"),
    ("anthropic-stream", "callm"),
    ("policies", "callm-bare"),
    ("policies", "callm-policies"),
    ("imports", "callm"),
)
#: What each case is divided by in the ``x httpx2`` column.
BASE = {"policies": "callm-bare"}
SECTIONS = "sync,stream,async,anthropic,policies,imports"
CLIENTS = "callm,callm-httpx2,httpx2"
Case = tuple[str, str]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python bench/compare_trees.py", description=__doc__)
    parser.add_argument("--before", type=Path, required=True, help="the older checkout")
    parser.add_argument("--after", type=Path, required=True, help="the newer checkout")
    parser.add_argument(
        "--between",
        type=Path,
        action="append",
        default=[],
        help="a checkout in between (e.g. a step of the change), compared with --before too",
    )
    parser.add_argument("--pairs", type=int, default=4, help="runs of each tree (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds inside each run")
    parser.add_argument("--sections", default=SECTIONS, help=f"default {SECTIONS}")
    parser.add_argument("--json", type=Path, default=None, help="write every run's figures")
    return parser.parse_args(argv)


def run_tree(tree: Path, section: str, rounds: int, out: Path) -> dict[str, Any]:
    """One section of this harness on ``tree``'s own venv; run.py's JSON document."""
    python = tree / ".venv" / "bin" / "python"
    command = [str(python), str(HERE / "run.py"), "--only", CLIENTS, "--sections", section]
    command += ["--rounds", str(rounds), "--json", str(out)]
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("CALLM_HOME", None)  # each run makes its own temporary home
    subprocess.run(command, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    document: dict[str, Any] = json.loads(out.read_text())
    return document


def figures(document: dict[str, Any]) -> dict[str, dict[Case, float]]:
    """Per case: ``wall`` (median round), ``cpu`` (median CPU per unit), ``x`` (vs base)."""
    wall: dict[Case, float] = {}
    cpu: dict[Case, float] = {}
    for section, rows in document["results"].items():
        for client, row in rows.items():
            if row.get("median") is None:
                continue
            wall[(section, client)] = float(row["median"])
            spent = row.get("cpu_us_per_unit") or row.get("cpu_ms")
            if spent:
                cpu[(section, client)] = float(statistics.median(spent))
    versus: dict[Case, float] = {}
    for section, client in CASES:
        ours, base = wall.get((section, client)), wall.get((section, BASE.get(section, "httpx2")))
        if ours is not None and base:
            versus[(section, client)] = ours / base
    return {"wall": wall, "cpu": cpu, "x": versus}


def _span(values: list[float], digits: int) -> str:
    points = (min(values), statistics.median(values), max(values))
    low, mid, high = (f"{v:,.{digits}f}" for v in points)
    return f"{mid} ({low}-{high})"


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _rows(runs: list[dict[str, Any]], kind: str, names: list[str]) -> list[str]:
    """One line per case and tree after the first: its figures, the first's, their ratio."""
    first = [r for r in runs if r["tree"] == names[0]]
    lines = []
    for case in CASES:
        for name in names[1:]:
            other = [r for r in runs if r["tree"] == name]
            b = [r[kind][case] for r in first if case in r[kind]]
            a = [r[kind][case] for r in other if case in r[kind]]
            if not a or not b:
                continue
            pairs = [
                ra[kind][case] / rb[kind][case]
                for rb, ra in zip(first, other, strict=False)
                if case in ra[kind] and case in rb[kind]
            ]
            digits = 1 if kind == "cpu" or case[0] == "imports" else 0
            label = f"{case[0]} {case[1]}" + (f" [{name}]" if len(names) > 2 else "")
            line = f"  {label:<44}{_span(b, digits):>26}{_span(a, digits):>26}"
            line += f"{_span(pairs, 3):>24}"
            if kind == "wall":
                vb = [r["x"][case] for r in first if case in r["x"]]
                va = [r["x"][case] for r in other if case in r["x"]]
                line += f"{_median(vb):>10.2f}x{_median(va):>9.2f}x"
            lines.append(line)
    return lines


def render(runs: list[dict[str, Any]], names: list[str]) -> str:
    head = f"  {'case':<44}{names[0] + ': median (range)':>26}"
    head += f"{'other: median (range)':>26}{'other / ' + names[0]:>24}"
    lines = ["Wall clock: req/s, chunks/s; imports ms (x: vs raw httpx2; policies: on / off)"]
    lines += [head + f"{'x ' + names[0]:>11}{'x other':>10}", *_rows(runs, "wall", names), ""]
    lines += ["CPU of the benchmark process: µs per request / per chunk; imports: ms of CPU"]
    lines += [head, *_rows(runs, "cpu", names), ""]
    loads = [r["load"] for r in runs]
    lines.append(
        f"load average (1 min) at the start of the runs: median {_median(loads):.2f}, "
        f"{min(loads):.2f}-{max(loads):.2f}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    trees = {"before": args.before.resolve()}
    for index, path in enumerate(args.between, 1):
        trees[f"between{index}" if len(args.between) > 1 else "between"] = path.resolve()
    trees["after"] = args.after.resolve()
    names = list(trees)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="callm-compare-") as folder:
        for pair in range(args.pairs):
            order = names if pair % 2 == 0 else names[::-1]  # ABBA …
            merged = {name: {"wall": {}, "cpu": {}, "x": {}, "load": []} for name in order}
            for section in sections:
                for name in order:
                    load = os.getloadavg()[0]
                    print(f"pair {pair + 1}/{args.pairs} {section}: {name} (load {load:.2f})",
                          file=sys.stderr)  # fmt: skip
                    out = Path(folder) / f"{name}-{pair}-{section}.json"
                    got = figures(run_tree(trees[name], section, args.rounds, out))
                    for kind in ("wall", "cpu", "x"):
                        merged[name][kind].update(got[kind])
                    merged[name]["load"].append(load)
            for name in names:
                loads = merged[name].pop("load")
                runs.append({"tree": name, "pair": pair, "load": _median(loads), **merged[name]})
    finished = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for name, path in trees.items():
        print(f"{name}: {path}")
    print(f"{args.pairs} runs of each tree, {args.rounds} rounds a run, sections interleaved "
          f"ABBA; finished {finished}")  # fmt: skip
    print(render(runs, names))
    if args.json:
        keyed = [{**r, **{k: _keyed(r[k]) for k in ("wall", "cpu", "x")}} for r in runs]
        document = {"trees": {k: str(v) for k, v in trees.items()}, "runs": keyed}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


def _keyed(values: dict[Case, float]) -> dict[str, float]:
    return {f"{section}/{client}": value for (section, client), value in values.items()}


if __name__ == "__main__":
    sys.exit(main())
