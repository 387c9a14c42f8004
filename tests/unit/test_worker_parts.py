"""The worker's pure parts: prefetch sizing, how a command is started, output files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from jobstream.workers import process
from jobstream.workers.outputs import OutputFiles, written
from jobstream.workers.prefetch import MAX_EXTRA, PATIENCE_S, RECENT_S, ClassPace
from jobstream.workers.process import Spawned, reap, seal_inherited_fds, shell_command, spawn

BASH = shutil.which("bash") or "/bin/sh"


def test_no_extra_dispatches_until_the_pace_is_known() -> None:
    pace = ClassPace(slots=2)
    assert pace.extra() == 0
    assert pace.demand(fit_now=2, now=0.0) == 2
    pace.held = 1
    assert pace.demand(fit_now=1, now=0.0) == 1
    assert pace.demand(fit_now=0, now=0.0) == 0  # another class holds the room: fetch nothing


def test_short_jobs_are_held_ahead_long_ones_are_not() -> None:
    short = ClassPace(slots=2)
    short.observe(0.002, now=10.0)
    assert short.extra() == MAX_EXTRA  # 2 slots x 0.5 s / 2 ms, capped
    assert short.demand(fit_now=0, now=10.0) == 2 + MAX_EXTRA  # fetched while the slots are busy
    short.held = 2 + MAX_EXTRA - 1
    assert short.demand(fit_now=0, now=10.0) == 0  # one job done: not worth a fetch yet
    short.held = 2 + MAX_EXTRA // 2
    assert short.demand(fit_now=0, now=10.0) == MAX_EXTRA // 2  # half the extra used: refill
    long = ClassPace(slots=2)
    long.observe(5.0, now=10.0)
    assert long.extra() == 0


def test_the_pace_follows_recent_jobs() -> None:
    pace = ClassPace(slots=1)
    pace.observe(10.0, now=10.0)
    for _ in range(40):
        pace.observe(0.01, now=10.0)
    assert pace.mean_run_s is not None and pace.mean_run_s < 0.02
    assert pace.extra() > 0


def test_a_pace_no_job_ends_at_any_more_fetches_no_extra() -> None:
    """Issue 23: quick jobs a while ago must not make a worker hoard the long ones next."""
    quick = ClassPace(slots=2)
    quick.observe(0.002, now=10.0)
    assert quick.current(10.0 + RECENT_S)
    assert not quick.current(10.0 + RECENT_S + 0.01)
    assert quick.demand(fit_now=2, now=12.0) == 2  # only what can start now
    assert quick.demand(fit_now=0, now=12.0) == 0
    medium = ClassPace(slots=2)  # ends come every 0.15 s: current for 4 such gaps
    medium.observe(0.3, now=10.0)
    assert medium.current(10.5) and not medium.current(10.7)


def test_jobs_claimed_ahead_go_back_once_no_job_ends_for_a_while() -> None:
    pace = ClassPace(slots=2)
    assert pace.stuck(0.0)  # nothing ever ended
    pace.observe(0.002, now=10.0)
    assert not pace.stuck(10.0 + PATIENCE_S)
    assert pace.stuck(10.0 + PATIENCE_S + 0.01)


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("true", ["true"]),
        ("python sim.py --case=3 -n 4", ["python", "sim.py", "--case=3", "-n", "4"]),
        ("echo hi > out", [BASH, "-c", "echo hi > out"]),
        ("echo $HOME", [BASH, "-c", "echo $HOME"]),
        ("a; b", [BASH, "-c", "a; b"]),
        ("X=1 run", [BASH, "-c", "X=1 run"]),  # an assignment, not a program
        ("cd sub", [BASH, "-c", "cd sub"]),  # a builtin
        ("time sleep 1", [BASH, "-c", "time sleep 1"]),  # a keyword, not /usr/bin/time
        ("echo 'quoted text'", [BASH, "-c", "echo 'quoted text'"]),
    ],
)
def test_plain_commands_run_directly_others_through_bash(command: str, argv: list[str]) -> None:
    assert shell_command(command, None) == argv


def test_invocation_script_prefixes_the_command() -> None:
    assert shell_command("sim.py --x", "python") == ["python", "sim.py", "--x"]
    assert shell_command("a && b", "wrap.sh") == [BASH, "-c", "wrap.sh a && b"]


def test_empty_output_is_discarded_and_its_files_reused(tmp_path: Path) -> None:
    files = OutputFiles(tmp_path / "logs", "w1")
    first = files.take()
    first.stdout.write_bytes(b"")
    first.stderr.write_bytes(b"")
    assert not written(first.stdout, first.stderr)
    files.give_back(first)
    assert files.take() == first  # the same pair again: no new files per job


def test_non_empty_output_is_kept_under_its_job(tmp_path: Path) -> None:
    files = OutputFiles(tmp_path / "logs", "w1")
    scratch = files.take()
    scratch.stdout.write_bytes(b"result 42\n")
    scratch.stderr.write_bytes(b"")
    assert written(scratch.stdout, scratch.stderr)
    kept = files.keep(scratch, "wf1", 7, 2)
    assert kept == {"stdout": tmp_path / "logs" / "wf1" / "7.2.stdout"}
    assert kept["stdout"].read_bytes() == b"result 42\n"
    assert not scratch.stdout.exists()  # moved, so the next job starts empty
    files.close()
    assert not (tmp_path / "logs" / ".scratch" / "w1").exists()
    assert kept["stdout"].exists()


def _run(argv: list[str], cwd: Path, out: Path) -> tuple[int, str, str]:
    child = spawn(argv, str(cwd), {"PATH": "/usr/bin:/bin"}, out / "out", out / "err")
    reaped = reap(child)
    assert reaped is not None
    return reaped[0], (out / "out").read_text(), (out / "err").read_text()


def test_jobs_in_the_workers_directory_start_with_posix_spawn_and_inherit_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    kept, other = os.pipe()  # what a launcher might pass the worker, inheritable
    os.set_inheritable(kept, True)
    try:
        seal_inherited_fds()
        child = spawn(
            ["true"], str(tmp_path), {"PATH": "/usr/bin:/bin"}, tmp_path / "o", tmp_path / "e"
        )
        assert isinstance(child, Spawned)
        assert reap(child) is not None
        code, out, err = _run(["sh", "-c", "ls /proc/$$/fd; yes | head -1"], tmp_path, tmp_path)
    finally:
        os.close(kept)
        os.close(other)
    assert code == 0 and err == ""  # SIGPIPE is back at its default: `yes` just ends
    assert sorted(map(int, out.split()[:-1])) == [0, 1, 2]  # nothing inherited
    assert out.split()[-1] == "y"


def test_posix_spawned_jobs_lead_a_session_with_their_environment_and_no_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    seal_inherited_fds()
    script = 'read x || echo eof; cut -d" " -f6 /proc/$$/stat; echo $$ "$GREETING"'
    env = {"PATH": "/usr/bin:/bin", "GREETING": "grüß dich"}
    child = spawn(["sh", "-c", script], str(tmp_path), env, tmp_path / "o", tmp_path / "e")
    assert isinstance(child, Spawned)  # glibc here: posix_spawn without the GIL
    assert reap(child)[0] == 0
    eof, session, rest = (tmp_path / "o").read_text().splitlines()
    assert eof == "eof" and rest == f"{session} grüß dich"  # its own session's leader


def test_jobs_elsewhere_start_through_subprocess_in_their_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, out, _ = _run(["pwd"], elsewhere, tmp_path)
    assert code == 0 and out.strip() == str(elsewhere)


def test_a_missing_program_is_reported_in_its_stderr_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    seal_inherited_fds()
    with pytest.raises(FileNotFoundError):
        spawn(
            ["no-such-program"], str(tmp_path), {"PATH": "/usr/bin"}, tmp_path / "o", tmp_path / "e"
        )
    assert "cannot start 'no-such-program'" in (tmp_path / "e").read_text()


def test_spawns_past_the_file_action_cache_still_write_their_own_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(process, "MAX_CACHED_ACTIONS", 0)  # as for recovery scripts' files
    seal_inherited_fds()
    for n in range(3):
        out = tmp_path / f"{n}.out"
        child = spawn(["echo", str(n)], str(tmp_path), {"PATH": "/usr/bin:/bin"}, out, out)
        assert isinstance(child, Spawned) and reap(child)[0] == 0
        assert out.read_text() == f"{n}\n"
