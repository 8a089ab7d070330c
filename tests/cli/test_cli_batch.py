"""``callm batch``: the real executable against the fake server — ids kept, failures recorded
and retried, a run killed with SIGKILL and resumed without resending what was answered."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pexpect
from cli_helpers import CallmProcess

from callm.testing import FakeOpenAIServer, Fault, Reply

MODEL = "openai/gpt-4o-mini"


def write_input(path: Path, count: int, *, ids: bool = True) -> list[Any]:
    """``count`` prompts "question N"; even lines get an id of their own when ``ids``."""
    expected = []
    with path.open("w") as f:
        for n in range(count):
            line: dict[str, Any] = {"prompt": f"question {n}"}
            if ids and n % 2 == 0:
                line["id"] = f"q-{n}"
            f.write(json.dumps(line) + "\n")
            expected.append(line.get("id", n + 1))
    return expected


def output_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def prompts_sent(server: FakeOpenAIServer) -> list[str]:
    return [r.json["messages"][-1]["content"] for r in server.requests if r.json]


def test_every_line_is_answered_with_its_id_and_a_summary_line(
    fake: FakeOpenAIServer, callm_run: CallmProcess, tmp_path: Path
) -> None:
    expected = write_input(tmp_path / "in.jsonl", 30)
    fake.queue(Reply("An answer."))

    result = callm_run("batch", "in.jsonl", "-o", "out.jsonl", "-m", MODEL, "-j", "4")

    assert result.code == 0, result.stderr
    [summary] = result.stderr.splitlines()
    assert summary.startswith("callm batch done: 30/30 answered, 30 sent in ")
    assert summary.endswith(" -> out.jsonl")
    lines = output_lines(tmp_path / "out.jsonl")
    assert sorted(map(str, (line["id"] for line in lines))) == sorted(map(str, expected))
    # Each answer is filed under its own line's id (the offline model echoes the prompt).
    echoes = [line for line in lines if line["text"] != "An answer."]
    assert len(echoes) == 29
    for line in echoes:
        n = int(line["id"][2:]) if isinstance(line["id"], str) else line["id"] - 1
        assert line["text"].startswith(f'[offline] You said: "question {n}"')
        assert line["usage"]["output_tokens"] > 0
        assert line["cost"] is not None
    assert all(line["model"] == MODEL for line in lines)
    assert len(fake.requests) == 30


def test_a_line_gives_messages_or_a_prompt_its_model_system_and_parameters(
    fake: FakeOpenAIServer, callm_run: CallmProcess, tmp_path: Path
) -> None:
    history = [
        {"role": "user", "content": "Name a prime."},
        {"role": "assistant", "content": "Seven."},
        {"role": "user", "content": "Another?"},
    ]
    lines = [
        {"id": "m", "messages": history, "model": "openai/gpt-4o", "temperature": 0.2},
        {"prompt": "Hi", "system": "Be brief.", "max_tokens": 7, "metadata": {"row": 2}},
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    result = callm_run("batch", "in.jsonl", "-o", "out.jsonl", "-m", MODEL, "-j", "1")

    assert result.code == 0, result.stderr
    bodies = {r.json["model"]: r.json for r in fake.requests if r.json}
    assert bodies["gpt-4o"]["messages"] == history
    assert bodies["gpt-4o"]["temperature"] == 0.2
    mini = bodies["gpt-4o-mini"]
    assert mini["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert mini["max_completion_tokens"] == 7
    out = {line["id"]: line for line in output_lines(tmp_path / "out.jsonl")}
    assert (out["m"]["model"], out[2]["model"]) == ("openai/gpt-4o", MODEL)
    assert out[2]["metadata"] == {"row": 2}


def test_failures_are_recorded_then_sent_again_with_retry_failed(
    fake: FakeOpenAIServer, callm_run: CallmProcess, tmp_path: Path
) -> None:
    (tmp_path / "in.jsonl").write_text(
        '{"id": "a", "prompt": "one"}\n\n{"id": "b", "prompt": "two"}\nnot json\n'
        '{"id": "c", "prompt": "three"}\n'
    )
    fake.queue(Fault.server_error(503))
    args = ("batch", "in.jsonl", "-o", "out.jsonl", "-m", MODEL, "-j", "1", "--max-retries", "0")

    first = callm_run(*args)

    assert first.code == 1
    assert "3/4 answered" not in first.stderr and "2/4 answered, 2 failed" in first.stderr
    status = json.loads(callm_run("batch", "status", "out.jsonl", "--json").stdout)
    failures = {f["id"]: f for f in status["failures"]}
    assert failures["a"]["type"] == "OverloadedError" and failures["a"]["status_code"] == 503
    assert failures[4]["type"] == "InvalidInput" and "line 4 is not JSON" in failures[4]["message"]
    assert (status["done"], status["failed"], status["total"]) == (2, 2, 4)

    again = callm_run(*args)  # without --retry-failed: nothing is sent
    assert again.code == 1
    assert len(fake.requests) == 3

    retried = callm_run(*args, "--retry-failed")
    assert retried.code == 1  # the line that is not JSON fails again
    assert prompts_sent(fake)[3:] == ["one"]
    ids = [line["id"] for line in output_lines(tmp_path / "out.jsonl")]
    assert sorted(ids) == ["a", "b", "c"]


def test_a_line_refused_for_a_while_is_retried_per_the_clients_policy(
    fake: FakeOpenAIServer, callm_run: CallmProcess, tmp_path: Path
) -> None:
    (tmp_path / "in.jsonl").write_text('{"id": "a", "prompt": "one"}\n')
    fake.queue(Fault.rate_limit(retry_after=0.1), Fault.server_error(503), Reply("At last."))

    result = callm_run("batch", "in.jsonl", "-o", "out.jsonl", "-m", MODEL)

    assert result.code == 0, result.stderr
    assert "1/1 answered" in result.stderr
    [line] = output_lines(tmp_path / "out.jsonl")
    assert (line["id"], line["text"]) == ("a", "At last.")
    assert prompts_sent(fake) == ["one", "one", "one"]  # two retries, one answer


def test_a_run_killed_with_sigkill_resumes_without_resending_answered_lines(
    fake: FakeOpenAIServer, callm_run: CallmProcess, tmp_path: Path, cli_home: Path
) -> None:
    count = 300
    expected = write_input(tmp_path / "in.jsonl", count)
    fake.queue(*[Fault.slow_first_byte(0.03) for _ in range(count)])
    args = ["batch", "in.jsonl", "-o", "out.jsonl", "-m", MODEL, "-j", "6"]
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        callm_run.argv(*args), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while (not out.exists() or out.read_bytes().count(b"\n") < 60) and proc.poll() is None:
        assert time.monotonic() < deadline, "the batch wrote nothing"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    committed = committed_prompts(cli_home / "callm.db")
    sent_before = len(fake.requests)
    assert 60 <= len(committed) < count

    resumed = callm_run(*args)

    assert resumed.code == 0, resumed.stderr
    assert f"{len(committed):,} done by earlier runs" in resumed.stderr
    lines = output_lines(out)
    assert sorted(map(str, (line["id"] for line in lines))) == sorted(map(str, expected))
    sent_after = prompts_sent(fake)[sent_before:]
    assert not committed & set(sent_after), "an answered line was sent again"
    # Only lines in flight (or answered but not yet committed) at the kill went twice.
    twice = [p for p, n in Counter(prompts_sent(fake)).items() if n > 1]
    assert len(twice) <= 6 * 3


def committed_prompts(db_path: Path) -> set[str]:
    """The prompts whose answers the store holds (line N is "question N-1")."""
    db = sqlite3.connect(db_path)
    try:
        rows = db.execute("SELECT line FROM batch_items WHERE status = 'done'").fetchall()
    finally:
        db.close()
    return {f"question {line - 1}" for (line,) in rows}


def test_a_changed_input_or_a_foreign_output_is_refused_until_restart(
    fake: FakeOpenAIServer, callm_run: CallmProcess, tmp_path: Path
) -> None:
    write_input(tmp_path / "in.jsonl", 3)
    assert callm_run("batch", "in.jsonl", "-o", "out.jsonl", "-m", MODEL).code == 0
    write_input(tmp_path / "in.jsonl", 4)

    changed = callm_run("batch", "in.jsonl", "-o", "out.jsonl", "-m", MODEL)
    assert changed.code == 2
    assert changed.stderr.startswith("callm: error: out.jsonl holds the answers to another input")
    (tmp_path / "mine.jsonl").write_text("precious\n")
    foreign = callm_run("batch", "in.jsonl", "-o", "mine.jsonl", "-m", MODEL)
    assert "mine.jsonl already exists and was not written by callm batch" in foreign.stderr
    assert (tmp_path / "mine.jsonl").read_text() == "precious\n"

    restarted = callm_run("batch", "in.jsonl", "-o", "out.jsonl", "-m", MODEL, "--restart")
    assert restarted.code == 0, restarted.stderr
    assert len(output_lines(tmp_path / "out.jsonl")) == 4
    missing = callm_run("batch", "nope.jsonl", "-o", "x.jsonl")
    assert (missing.code, missing.stderr) == (2, "callm: error: nope.jsonl: no such input file\n")


def test_rpm_paces_the_requests_through_the_limiter(
    fake: FakeOpenAIServer, callm_run: CallmProcess, tmp_path: Path
) -> None:
    write_input(tmp_path / "in.jsonl", 8)
    started = time.monotonic()
    result = callm_run("batch", "in.jsonl", "-o", "out.jsonl", "-m", MODEL, "--rpm", "240")
    elapsed = time.monotonic() - started
    assert result.code == 0, result.stderr
    # 240 a minute is 4 a second: 4 may go at once, the other 4 take a second more.
    assert elapsed >= 0.9
    assert len(fake.requests) == 8


def test_tpm_paces_the_requests_by_their_tokens(
    fake: FakeOpenAIServer, callm_run: CallmProcess, tmp_path: Path
) -> None:
    words = " ".join(f"word{i}" for i in range(150))
    with (tmp_path / "in.jsonl").open("w") as f:
        for n in range(8):
            f.write(json.dumps({"prompt": f"{words} question {n}", "max_tokens": 10}) + "\n")
    args = ("batch", "in.jsonl", "-m", MODEL, "-j", "8")
    free = callm_run(*args, "-o", "free.jsonl")
    paced = callm_run(*args, "-o", "paced.jsonl", "--tpm", "30000")
    assert (free.code, paced.code) == (0, 0), free.stderr + paced.stderr

    def seconds_and_tokens(summary: str) -> tuple[float, int]:
        found = re.search(r" in ([\d.]+)s .*?, ([\d,]+) tokens", summary)
        assert found, summary
        return float(found[1]), int(found[2].replace(",", ""))

    free_s, tokens = seconds_and_tokens(free.stderr)
    paced_s, paced_tokens = seconds_and_tokens(paced.stderr)
    assert paced_tokens == tokens > 1000
    # 30,000 a minute is 500 a second, 500 at once: the tokens past the first 500 take at
    # least a second for each 500 (the limiter counts what each call may use, no less).
    assert paced_s >= (tokens - 500) / 500
    assert paced_s > free_s
    assert len(fake.requests) == 16


def test_the_progress_bar_shows_on_a_terminal(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    write_input(tmp_path / "in.jsonl", 40)
    fake.queue(*[Fault.slow_first_byte(0.05) for _ in range(40)])
    child = pexpect.spawn(
        sys.executable,
        ["-m", "callm", "batch", "in.jsonl", "-o", "out.jsonl", "-m", MODEL, "-j", "2"],
        cwd=str(tmp_path),
        env=dict(os.environ, COLUMNS="140", TERM="xterm"),
        encoding="utf-8",
        dimensions=(24, 140),
        timeout=60,
    )
    child.expect(pexpect.EOF)
    child.close()
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before)
    frames = [f for f in re.split(r"[\r\n]+", screen) if f.startswith("batch ")]
    counts = [int(m[1]) for f in frames if (m := re.search(r" (\d+)/40 .*/s", f))]
    assert any(n < 40 for n in counts), frames  # seen while it ran, not only at the end
    # done / total, rate, time so far, ETA, then tokens and cost
    running = r" (\d+)/40 \d+/s \d:\d\d:\d\d ETA \d:\d\d:\d\d [\d,]+ tokens · \$"
    assert any(re.search(running, f) for f in frames), frames
    assert re.search(r" 40/40 \d+/s .* tokens · \$", frames[-1]), frames[-1]
    assert "callm batch done: 40/40 answered" in screen
    assert child.exitstatus == 0


def test_ctrl_c_stops_with_130_and_the_same_command_finishes(
    fake: FakeOpenAIServer, callm_run: CallmProcess, tmp_path: Path
) -> None:
    # 300 slow answers two at a time: at least 15 s of work, so Ctrl-C lands mid-run.
    expected = write_input(tmp_path / "in.jsonl", 300)
    fake.queue(*[Fault.slow_first_byte(0.1) for _ in range(300)])
    args = ["batch", "in.jsonl", "-o", "out.jsonl", "-m", MODEL, "-j", "2"]
    child = pexpect.spawn(
        sys.executable,
        ["-m", "callm", *args],
        cwd=str(tmp_path),
        env=dict(os.environ, TERM="xterm", COLUMNS="140"),
        encoding="utf-8",
        dimensions=(24, 140),
        timeout=60,
        # SIGINT's disposition and mask are inherited: whatever this test process has,
        # the child starts with the default, unblocked, as from a shell.
        preexec_fn=default_sigint,
    )
    # The progress bar is drawn once the run is under way (its SIGINT handler installed);
    # reading it also keeps the terminal's buffer from filling and blocking the child.
    answered = 0
    while answered < 10:
        child.expect(r"(\d+)/300\b")
        answered = int(child.match[1])
    state = signal_state(child.pid)
    child.sendcontrol("c")  # the byte a terminal sends, whatever this process's own tty says
    child.expect(pexpect.EOF)
    child.close()
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before)
    assert child.exitstatus == 130, f"{child.exitstatus=} {state=} {screen[-500:]!r}"
    assert "callm batch interrupted: " in screen
    assert "run the same command to finish the rest" in screen
    done_before = len(output_lines(tmp_path / "out.jsonl"))
    assert 10 <= done_before < 300
    fake.clear()  # the rest is answered at once

    finished = callm_run(*args)

    assert finished.code == 0, finished.stderr
    assert f"{done_before:,} done by earlier runs" in finished.stderr
    ids = [line["id"] for line in output_lines(tmp_path / "out.jsonl")]
    assert sorted(map(str, ids)) == sorted(map(str, expected))


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def signal_state(pid: int) -> str:
    """The process's blocked, ignored and caught signal masks, for a failure message."""
    with open(f"/proc/{pid}/status") as status:
        return " ".join(line.split()[0] + line.split()[1] for line in status
                        if line.startswith(("SigBlk", "SigIgn", "SigCgt")))  # fmt: skip
