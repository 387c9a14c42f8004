"""The four real torc examples expand to the documented job, file and edge counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobstream.model import WorkflowDef
from jobstream.spec import load_spec

HERE = Path(__file__).resolve().parent
COPIES = HERE / "specs" / "torc"
SHARED = HERE.parents[1].parent / "shared" / "examples" / "torc"
EXAMPLES = (
    "hyperparameter_sweep.yaml",
    "data_pipeline_parameterized.yaml",
    "workflow_actions_ml_training.yaml",
    "diamond_workflow.yaml",
)


def _by_name(wf: WorkflowDef) -> dict[str, set[str]]:
    """Job name → names of the jobs it depends on."""
    names = [job.name for job in wf.jobs]
    return {job.name: {names[i] for i in job.depends_on} for job in wf.jobs}


def _check_hyperparameter_sweep(wf: WorkflowDef) -> None:
    assert (len(wf.jobs), len(wf.files), wf.edges()) == (38, 38, 54)
    deps = _by_name(wf)
    train = [n for n in deps if n.startswith("train_")]
    aggregate = [n for n in deps if n.startswith("aggregate_")]
    assert len(train) == len(aggregate) == 18
    for name in train:
        assert deps[name] == {"prepare_train_data", "prepare_val_data"}
    for name in aggregate:
        assert deps[name] == {name.replace("aggregate_results_", "train_")}
    assert "train_lr0.0001_bs16_optadam" in deps
    assert "aggregate_results_lr0.0100_bs64_optsgd" in deps
    assert wf.extras["project"] == "ml-research"
    assert wf.extras["metadata"] == {"team": "applied-ml", "experiment": "resnet50-tuning"}
    gpu = wf.jobs[2].resources
    assert (gpu.num_cpus, gpu.num_gpus, gpu.memory_mib, gpu.runtime_s) == (8, 1, 32768, 7200)


def _check_data_pipeline(wf: WorkflowDef) -> None:
    assert (len(wf.jobs), len(wf.files), wf.edges()) == (36, 20, 40)
    deps = _by_name(wf)
    datasets = ("sales", "inventory", "customers", "products")
    kinds = ("summary", "trends", "anomalies")
    for d in datasets:
        assert deps[f"download_{d}"] == set()
        assert deps[f"preprocess_{d}"] == {f"download_{d}"}
        for k in kinds:
            assert deps[f"analyze_{d}_{k}"] == {f"preprocess_{d}"}
            assert deps[f"report_{d}_{k}"] == {f"analyze_{d}_{k}"}
        assert deps[f"executive_summary_{d}"] == {f"report_{d}_{k}" for k in kinds}
    by_name = {j.name: j for j in wf.jobs}
    assert by_name["analyze_sales_trends"].resource_requirements == "cpu_intensive"
    assert by_name["analyze_sales_trends"].resources.memory_mib == 16 * 1024


def _check_ml_training(wf: WorkflowDef) -> None:
    assert (len(wf.jobs), wf.edges()) == (10, 16)
    deps = _by_name(wf)
    trains = {f"train_model_{i}" for i in range(1, 9)}
    for name in trains:
        assert deps[name] == {"preprocess_data"}
    assert deps["evaluate"] == trains
    assert [a["trigger_type"] for a in wf.extras["actions"]] == [
        "on_workflow_start",
        "on_jobs_ready",
        "on_jobs_complete",
        "on_workflow_complete",
    ]
    assert wf.extras["slurm_schedulers"][0]["name"] == "gpu_cluster"


def _check_diamond(wf: WorkflowDef) -> None:
    assert (len(wf.jobs), len(wf.files), wf.edges()) == (4, 6, 4)
    deps = _by_name(wf)
    assert deps == {
        "preprocess": set(),
        "work1": {"preprocess"},
        "work2": {"preprocess"},
        "postprocess": {"work1", "work2"},
    }
    jobs = {j.name: j for j in wf.jobs}
    assert jobs["preprocess"].command == (
        "bash tests/scripts/preprocess.sh -i f1.json -o f2.json -o f3.json"
    )
    assert jobs["postprocess"].input_files == ("f4", "f5")
    assert jobs["postprocess"].output_files == ("f6",)
    assert wf.user == "test_user"


CHECKS = {
    "hyperparameter_sweep.yaml": _check_hyperparameter_sweep,
    "data_pipeline_parameterized.yaml": _check_data_pipeline,
    "workflow_actions_ml_training.yaml": _check_ml_training,
    "diamond_workflow.yaml": _check_diamond,
}


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_copy_expands_as_documented(name: str) -> None:
    CHECKS[name](load_spec(COPIES / name))


@pytest.mark.parametrize("name", EXAMPLES)
def test_shared_example_matches_the_copy(name: str) -> None:
    if not (SHARED / name).is_file():
        pytest.skip("shared/examples/torc is not beside this checkout")
    shared = load_spec(SHARED / name)
    CHECKS[name](shared)
    assert shared == load_spec(COPIES / name)


def test_job_indexes_follow_declaration_and_expansion_order() -> None:
    wf = load_spec(COPIES / "hyperparameter_sweep.yaml")
    assert [j.index for j in wf.jobs] == list(range(38))
    names = [j.name for j in wf.jobs]
    assert names[:2] == ["prepare_train_data", "prepare_val_data"]
    # product order: lr slowest, optimizer fastest
    assert names[2:6] == [
        "train_lr0.0001_bs16_optadam",
        "train_lr0.0001_bs16_optsgd",
        "train_lr0.0001_bs32_optadam",
        "train_lr0.0001_bs32_optsgd",
    ]
    for job in wf.jobs:
        assert all(dep < job.index for dep in job.depends_on)
