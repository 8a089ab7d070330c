"""Section 6: wall time of ``python -c "import X"`` in a fresh interpreter.

Every package is timed with its bytecode compiled, as an installed package has it: an
editable checkout (callm's own, in development) under ``PYTHONDONTWRITEBYTECODE`` would
otherwise be compiled from source at every start, and measured for that instead.
"""

from __future__ import annotations

import compileall
import importlib.util
import os
import resource
import subprocess
import sys
import time
from collections.abc import Mapping

from _common import Result, configure_litellm_env

#: client name -> module imported
MODULES = {"callm": "callm", "httpx2": "httpx2", "openai": "openai", "litellm": "litellm"}
_TIMEOUT = 120.0


def _once(module: str | None, env: Mapping[str, str]) -> tuple[float, float]:
    """Wall ms of one fresh interpreter importing ``module``, and the CPU ms it used."""
    code = "pass" if module is None else f"import {module}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=_TIMEOUT,
    )
    wall = (time.perf_counter() - started) * 1000.0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu * 1000.0


def _compile_bytecode(module: str) -> None:
    """Write the package's missing ``__pycache__`` files (up-to-date ones are skipped)."""
    spec = importlib.util.find_spec(module)
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            compileall.compile_dir(folder, quiet=1)


def run(clients: list[str], runs: int, slow_runs: int) -> dict[str, Result]:
    """Median wall ms over ``runs`` interleaved runs (``slow_runs`` for LiteLLM).

    ``python -c pass`` is measured the same way as ``baseline``; the ``net`` figure in
    each result's detail subtracts it (the interpreter's own start-up).
    """
    configure_litellm_env()
    env = dict(os.environ)
    for name in clients:
        if name in MODULES:
            _compile_bytecode(MODULES[name])
    names = ["baseline", *[c for c in MODULES if c in clients]]
    results = {n: Result(n, "ms", higher_is_better=False, statistic="median") for n in names}
    for index in range(runs):
        for name in names:
            result = results[name]
            if result.error or (name == "litellm" and index >= slow_runs):
                continue
            try:
                ms, cpu_ms = _once(MODULES.get(name), env)
            except subprocess.CalledProcessError as exc:
                last = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
                result.error = f"not available ({last[-1] if last else exc})"
                continue
            except subprocess.TimeoutExpired:
                result.error = f"timed out after {_TIMEOUT:.0f} s"
                continue
            result.rounds.append(round(ms, 1))
            result.detail.setdefault("cpu_ms", []).append(round(cpu_ms, 1))
    base = results["baseline"].value or 0.0
    for name, result in results.items():
        if name != "baseline" and result.value is not None:
            result.detail["net_ms"] = round(result.value - base, 1)
    return results
