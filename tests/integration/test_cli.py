"""The `jobstream` command as a user types it: real processes, real examples."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from jobstream.streams.urls import public

from .processes import jobstream, served

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
TORC = REPO / "tests" / "unit" / "specs" / "torc"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    return tmp_path


def test_run_diamond_writes_real_files(workdir: Path) -> None:
    result = jobstream("run", "examples/diamond.yaml", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert (workdir / "diamond-output" / "total.txt").read_text() == "total 5050\n"
    assert "completed" in result.stdout and "4" in result.stdout


def test_run_sweep_then_status_agrees(workdir: Path) -> None:
    result = jobstream("run", "examples/sweep.yaml", "--json", cwd=workdir)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["counts"]["completed"] == 102 and summary["succeeded"]
    assert len((workdir / "sweep-output" / "all.txt").read_text().splitlines()) == 100
    assert (workdir / "sweep-output" / "point_a07_b08.txt").read_text() == "7 8 56\n"
    status = jobstream("status", summary["workflow"], "--json", cwd=workdir)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["counts"] == summary["counts"]


def test_failing_workflow_exits_nonzero_and_names_the_jobs(workdir: Path) -> None:
    result = jobstream("run", "examples/failing.yaml", cwd=workdir)
    assert result.returncode == 1
    assert "broken" in result.stdout and "failed" in result.stdout
    assert "report" in result.stdout and "dependency 'broken' failed" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "jobs", "files", "edges"),
    [
        ("hyperparameter_sweep", 38, 38, 54),
        ("data_pipeline_parameterized", 36, 20, 40),
        ("workflow_actions_ml_training", 10, 0, 16),
        ("diamond_workflow", 4, 6, 4),
    ],
)
def test_check_torc_examples(tmp_path: Path, name: str, jobs: int, files: int, edges: int) -> None:
    result = jobstream("check", str(TORC / f"{name}.yaml"), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["jobs"], summary["files"], summary["edges"]) == (jobs, files, edges)


def test_check_prints_a_human_summary(tmp_path: Path) -> None:
    result = jobstream("check", str(TORC / "hyperparameter_sweep.yaml"), cwd=tmp_path)
    assert result.returncode == 0
    assert "jobs" in result.stdout and "38" in result.stdout
    assert "c8.m32768.g1.n1.t7200: 18 jobs" in result.stdout


def test_bad_spec_is_one_line_naming_file_line_and_key(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\njobs:\n  - name: a\n    command: echo hi\n    dependson: [b]\n")
    for command in ("check", "run", "submit"):
        result = jobstream(command, str(spec), cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "bad.yaml:5" in lines[0] and "dependson" in lines[0]
    assert not (tmp_path / ".jobstream").exists()  # nothing started, nothing written


def test_run_refuses_jobs_this_machine_cannot_fit(tmp_path: Path) -> None:
    result = jobstream("run", str(TORC / "workflow_actions_ml_training.yaml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "need more than this machine offers" in result.stderr
    assert "--gpus" in result.stderr


def test_commands_that_need_a_server_say_so(tmp_path: Path) -> None:
    result = jobstream("submit", str(EXAMPLES / "diamond.yaml"), cwd=tmp_path)
    assert result.returncode == 3
    assert "no NATS server" in result.stderr and "jobstream server" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_and_version(tmp_path: Path) -> None:
    result = jobstream("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("run", "check", "submit", "server", "worker", "status"):
        assert command in result.stdout
    assert jobstream("--version", cwd=tmp_path).stdout.startswith("jobstream ")


def test_sql_events_rebuild_and_as_of(workdir: Path) -> None:
    run = jobstream("run", "examples/sweep.yaml", "--json", cwd=workdir)
    assert run.returncode == 0, run.stderr
    wf = json.loads(run.stdout)["workflow"]
    query = f"select state, count(*) as n from jobs where wf = '{wf}' group by 1"
    rows = json.loads(jobstream("sql", query, "--format", "json", cwd=workdir).stdout)
    assert rows == [{"state": "completed", "n": 102}]
    csv_out = jobstream("sql", query, "-f", "csv", cwd=workdir).stdout.splitlines()
    assert csv_out == ["state,n", "completed,102"]
    parquet = jobstream(
        "sql", "select * from jobs", "-f", "parquet", "-o", "jobs.parquet", cwd=workdir
    )
    assert parquet.returncode == 0, parquet.stderr
    import pyarrow.parquet as pq

    assert pq.read_table(workdir / "jobs.parquet").num_rows == 102

    history = jobstream("events", wf, "setup", "--json", cwd=workdir)
    assert history.returncode == 0, history.stderr
    lines = [json.loads(line) for line in history.stdout.splitlines()]
    assert [e["type"] for e in lines] == [
        "JobSubmitted",
        "JobReady",
        "JobClaimed",
        "JobStarted",
        "JobCompleted",
    ]
    assert lines[1]["actor"] == "scheduler" and lines[2]["actor"] == lines[2]["payload"]["worker"]
    assert [e["seq"] for e in lines] == sorted(e["seq"] for e in lines)
    table = jobstream("events", wf, cwd=workdir)
    assert table.returncode == 0 and "WorkflowCompleted" in table.stdout

    rebuilt = jobstream("rebuild", "--json", cwd=workdir)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["events"] > 500
    assert json.loads(jobstream("sql", query, "-f", "json", cwd=workdir).stdout) == rows

    early = jobstream(
        "sql", "select count(*) as n from events", "--as-of", "3", "-f", "json", cwd=workdir
    )
    assert early.returncode == 0, early.stderr
    assert json.loads(early.stdout) == [{"n": 3}]


def test_bad_sql_is_one_line(workdir: Path) -> None:
    assert jobstream("run", "examples/diamond.yaml", cwd=workdir).returncode == 0
    result = jobstream("sql", "select nope from jobs", cwd=workdir)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "nope" in result.stderr
    bad_time = jobstream("sql", "select 1", "--as-of", "yesterday", cwd=workdir)
    assert bad_time.returncode == 2 and "--as-of" in bad_time.stderr


def test_server_submit_watch_and_events(workdir: Path) -> None:
    with served(workdir, "--cpus", "2", "--memory", "1g") as url:
        submitted = jobstream("submit", "examples/failing.yaml", "--json", cwd=workdir)
        assert submitted.returncode == 0, submitted.stderr
        wf = json.loads(submitted.stdout)["workflow"]
        watched = jobstream("watch", wf, cwd=workdir)
        assert watched.returncode == 1, watched.stderr
        assert "job 1 failed" in watched.stderr
        assert "broken" in watched.stdout and "about to fail" in watched.stdout
        status = json.loads(jobstream("status", wf, "--json", cwd=workdir).stdout)
        assert status["finished"] and status["counts"]["failed"] == 1
        assert public(url).startswith("nats://127.0.0.1:")


def test_cancel_terminates_running_and_queued_jobs(workdir: Path) -> None:

    spec = workdir / "long.yaml"
    spec.write_text(
        "name: long\njobs:\n"
        "  - name: sleeper\n    command: sleep 60; touch finished\n"
        "  - name: after\n    command: touch after\n    depends_on: [sleeper]\n"
    )
    with served(workdir, "--cpus", "1", "--memory", "1g"):
        wf = json.loads(jobstream("submit", str(spec), "--json", cwd=workdir).stdout)["workflow"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            events = jobstream("events", wf, "sleeper", "--json", cwd=workdir).stdout
            if "JobStarted" in events:
                break
            time.sleep(0.2)
        began = time.monotonic()
        canceled = jobstream("cancel", wf, "--json", cwd=workdir)
        assert canceled.returncode == 0, canceled.stderr
        result = json.loads(canceled.stdout)
        assert 0 in result["canceled"]  # job 1 may already be canceled by the cascade
        assert sorted(result["canceled"] + result["already_finished"]) == [0, 1]
        watched = jobstream("watch", wf, "--json", cwd=workdir)
        assert watched.returncode == 1
        assert json.loads(watched.stdout)["counts"]["canceled"] == 2
        assert time.monotonic() - began < 15  # the sleep 60 was terminated
        history = [
            json.loads(x)["type"]
            for x in jobstream("events", wf, "sleeper", "--json", cwd=workdir).stdout.splitlines()
        ]
        assert history[-2:] == ["JobStarted", "JobCanceled"]
    assert not (workdir / "finished").exists() and not (workdir / "after").exists()


def test_explain_names_missing_capacity_and_dependencies(workdir: Path) -> None:

    spec = workdir / "gpu.yaml"
    spec.write_text(
        "name: gpu\nresource_requirements:\n"
        "  - {name: gpu, num_cpus: 1, memory: 1g, num_gpus: 2, runtime: PT1M}\n"
        "jobs:\n"
        "  - {name: train, command: 'true', resource_requirements: gpu}\n"
        "  - {name: report, command: 'true', depends_on: [train]}\n"
    )
    with served(workdir, "--cpus", "2", "--memory", "2g"):
        wf = json.loads(jobstream("submit", str(spec), "--json", cwd=workdir).stdout)["workflow"]
        deadline, text = time.monotonic() + 20, ""
        while time.monotonic() < deadline and "no running worker has" not in text:
            text = jobstream("explain", wf, "train", cwd=workdir).stdout
            time.sleep(0.3)
        assert "no running worker has 2 GPUs (largest worker: 0)" in text, text
        report = jobstream("explain", wf, "report", cwd=workdir).stdout
        assert "waiting for dependency 'train' (job 0), which is ready" in report
        assert jobstream("cancel", wf, cwd=workdir).returncode == 0


def test_restart_failed_runs_failed_and_canceled_jobs_again(workdir: Path) -> None:
    spec = workdir / "fixable.yaml"
    spec.write_text(
        "name: fixable\njobs:\n"
        "  - {name: prep, command: 'true'}\n"
        "  - {name: needs_fix, command: 'test -f fixed || exit 3', depends_on: [prep]}\n"
        "  - {name: report, command: 'touch reported', depends_on: [needs_fix]}\n"
    )
    with served(workdir, "--cpus", "2", "--memory", "1g"):
        wf = json.loads(jobstream("submit", str(spec), "--json", cwd=workdir).stdout)["workflow"]
        first = jobstream("watch", wf, "--json", cwd=workdir)
        assert first.returncode == 1 and json.loads(first.stdout)["counts"]["canceled"] == 1
        (workdir / "fixed").touch()
        restarted = jobstream("restart", wf, "--failed", "--json", cwd=workdir)
        assert restarted.returncode == 0, restarted.stderr
        assert json.loads(restarted.stdout)["restarted"] == [1, 2]
        second = jobstream("watch", wf, "--json", cwd=workdir)
        assert second.returncode == 0, second.stdout
        assert json.loads(second.stdout)["counts"]["completed"] == 3
        history = [
            json.loads(x)
            for x in jobstream("events", wf, "needs_fix", "--json", cwd=workdir).stdout.splitlines()
        ]
    kinds = [e["type"] for e in history]
    assert kinds.count("JobClaimed") == 2 and kinds[-1] == "JobCompleted"
    assert "JobFailed" in kinds and "JobRestarted" in kinds  # the first attempt is kept
    assert [e["payload"]["attempt"] for e in history if e["type"] == "JobStarted"] == [1, 2]
    assert (workdir / "reported").exists()
    assert jobstream("restart", wf, cwd=workdir).returncode == 2  # says what to restart
