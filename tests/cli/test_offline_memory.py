"""The offline model streams in bounded memory: tens of MB on stdin cost a small multiple of
themselves (the reply quotes the prompt, so it is as big), not a list of every word and
every frame. The call log is off here: storing a 20 MB prompt and its reply is the
database's cost, not the model's."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import CallmProcess

MB = 1024 * 1024
PROMPT_MB = 20
# Peak RSS of the whole `callm` process (client and local server) above the same command's
# with a one-word prompt, as a multiple of the prompt's size. Measured: 12-15x (a few copies
# of the prompt and of the reply, and what malloc keeps of them). Before, the offline model
# and the client held a Python object per word and per SSE frame: ~240x (5 MB cost 1.2 GB).
BOUND = 25

# Runs ``callm`` with the prompt on stdin, counts the bytes it prints, and reports the peak
# RSS of that one child (ru_maxrss, in KiB on Linux).
_MEASURE = """
import resource, subprocess, sys
with open(sys.argv[1], "rb") as prompt:
    child = subprocess.Popen(sys.argv[2:], stdin=prompt, stdout=subprocess.PIPE)
    assert child.stdout is not None
    printed = 0
    while piece := child.stdout.read(1 << 20):
        printed += len(piece)
    code = child.wait()
print(code, printed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def prompt_file(folder: Path, size: int) -> Path:
    """``size`` bytes of words of ordinary length, the kind that splits into most fragments."""
    rng = random.Random(15)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=n)) for n in range(3, 16)]
    path = folder / "prompt.txt"
    with path.open("w") as f:
        written = 0
        while written < size:
            line = " ".join(rng.choices(words, k=4000)) + "\n"
            f.write(line)
            written += len(line)
    return path


def peak(callm_run: CallmProcess, prompt: Path, *flags: str) -> tuple[int, int]:
    """(bytes printed, peak RSS in bytes) of ``callm -m local/offline FLAGS < prompt``."""
    argv = [sys.executable, "-c", _MEASURE, str(prompt), *callm_run.argv(*flags)]
    env = {**os.environ, "CALLM_LOG": "0"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=True, env=env)
    code, printed, rss_kib = (int(v) for v in done.stdout.split())
    assert code == 0, done.stderr
    return printed, rss_kib * 1024


@pytest.mark.parametrize("flags", [(), ("--no-stream",)], ids=["stream", "no-stream"])
def test_a_prompt_of_tens_of_mb_streams_in_bounded_memory(
    callm_run: CallmProcess, tmp_path: Path, flags: tuple[str, ...]
) -> None:
    small = tmp_path / "small"
    small.mkdir()
    (small / "prompt.txt").write_text("hi\n")
    _, baseline = peak(callm_run, small / "prompt.txt", "-m", "local/offline", *flags)
    prompt = prompt_file(tmp_path, PROMPT_MB * MB)
    printed, rss = peak(callm_run, prompt, "-m", "local/offline", *flags)
    assert printed > prompt.stat().st_size  # the whole prompt quoted back
    grown = rss - baseline
    assert grown < BOUND * prompt.stat().st_size, (
        f"{PROMPT_MB} MB of prompt cost {grown / MB:.0f} MB above {baseline / MB:.0f} MB"
    )
