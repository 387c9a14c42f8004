"""More real torc example specs expand to the counts torc's semantics give.

Every file in ``specs/torc_more`` is a verbatim copy of a spec from torc's own repository
(YAML copies start with one ``# Source:`` comment line; JSON and JSON5 copies are
unchanged). The expected (jobs, files, user_data, edges) were worked out by hand from
each spec and torc's documented rules, not from jobstream's output: Cartesian product
unless ``parameter_mode: zip``; ``a:b`` and ``a:b:s`` ranges are inclusive of ``b`` only
when a step lands on it (``"1:100:25"`` is 1, 26, 51, 76 — the spec's comment saying five
values is wrong); ``depends_on_regexes`` is an unanchored search; a job reading a file,
user data or dataset depends on every job writing it. Counts torc states itself are
asserted as such: hyperparameter_sweep_shared_params "3 * 3 * 2 = 18 training jobs",
subgraphs README "Total Jobs: 15", the barrier tutorial's 1000 → 1000 → 100 jobs.

Sources (repository, path, commit):

* NatLabRockies/torc (torc's current home), examples/yaml/: chained_allocations f971e15,
  dataset_fanin / dataset_hash_modes / distributed_training_dataset 8ca00c3,
  direct_mode_checkpointing a488a1e, dynamic_orchestrator_local 0013de6,
  failure_handler_simulation 460c745, fan_in_with_regexes d37dc9a,
  hyperparameter_sweep_shared_params 460c745, labeled_jobs ebfd29d,
  parameterized_from_csv 789d993, parameterized_from_json 591e82c,
  parameterized_shared_table 591e82c, parameterized_user_data a488a1e,
  resource_monitoring_demo 58c075e, ro_crate_provenance 53e1846, simulation_sweep aed73ca,
  variables_demo 4a01f9a, workflow_actions_data_pipeline b82c615,
  workflow_actions_multi_class_slurm 7a6702e, workflow_actions_simple_slurm 72e1df5,
  zip_parameter_mode a488a1e; examples/subgraphs/subgraphs_workflow.yaml 3418f36;
  examples/json/: failure_handler_simulation.json aed73ca,
  hyperparameter_sweep_shared_params.json5 aed73ca, simulation_sweep.json5 460c745,
  slurm_staged_pipeline.json5 4437782, variables_demo.json and variables_demo.json5
  4a01f9a, zip_parameter_mode.json5 b82c615; examples/parameter_tables/sweep.csv and sweep.json
  789d993 (copied to ``specs/torc_more/examples/parameter_tables``, the path the
  specs name).
* NREL/torc (older releases), examples/yaml/: failure_handler_demo cc3f678,
  hundred_jobs_parameterized 453a33a, sample_workflow c30c7b6, simple_retry b982db3,
  workflow_actions_simple 835e18d; with key names of older releases:
  hundred_jobs_workflow 486420d (``resource_requirements_name``) and
  multi_stage_barrier_pattern c27a475 (``blocked_by`` / ``blocked_by_regexes``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from jobstream.errors import SpecError
from jobstream.model import WorkflowDef
from jobstream.spec import load_spec, parse_spec

HERE = Path(__file__).resolve().parent
SPECS = HERE / "specs" / "torc_more"

# file → (jobs, files, user_data, edges)
COUNTS: dict[str, tuple[int, int, int, int]] = {
    "chained_allocations.yaml": (4, 0, 0, 3),
    "dataset_fanin.yaml": (6, 0, 0, 5),
    "dataset_hash_modes.yaml": (4, 0, 0, 3),
    "direct_mode_checkpointing.yaml": (5, 5, 0, 6),
    "distributed_training_dataset.yaml": (8, 0, 0, 10),
    "dynamic_orchestrator_local.yaml": (2, 0, 0, 0),
    "failure_handler_demo.yaml": (4, 0, 0, 4),
    "failure_handler_simulation.yaml": (18, 0, 0, 9),
    "failure_handler_simulation.json": (18, 0, 0, 9),
    "fan_in_with_regexes.yaml": (30, 30, 0, 52),
    "hundred_jobs_parameterized.yaml": (100, 0, 0, 0),
    "hundred_jobs_workflow.yaml": (100, 0, 0, 0),
    "hyperparameter_sweep_shared_params.yaml": (38, 38, 0, 54),
    "hyperparameter_sweep_shared_params.json5": (38, 38, 0, 54),
    "labeled_jobs.yaml": (5, 0, 0, 4),
    "multi_stage_barrier_pattern.yaml": (2104, 0, 0, 3201),
    "parameterized_from_csv.yaml": (4, 4, 0, 0),
    "parameterized_from_json.yaml": (4, 0, 0, 0),
    "parameterized_shared_table.yaml": (9, 4, 0, 8),
    "parameterized_user_data.yaml": (3, 0, 3, 0),
    "resource_monitoring_demo.yaml": (3, 0, 0, 0),
    "ro_crate_provenance.yaml": (5, 5, 0, 3),
    "sample_workflow.yaml": (3, 5, 3, 2),
    "simple_retry.yaml": (2, 0, 0, 1),
    "simulation_sweep.yaml": (49, 49, 0, 48),
    "simulation_sweep.json5": (49, 49, 0, 48),
    "slurm_staged_pipeline.json5": (12, 21, 0, 20),
    "subgraphs_workflow.yaml": (15, 17, 0, 22),
    "variables_demo.yaml": (6, 1, 0, 8),
    "variables_demo.json": (6, 1, 0, 8),
    "variables_demo.json5": (6, 1, 0, 8),
    "workflow_actions_data_pipeline.yaml": (14, 0, 0, 13),
    "workflow_actions_multi_class_slurm.yaml": (31, 0, 0, 30),
    "workflow_actions_simple.yaml": (3, 0, 0, 2),
    "workflow_actions_simple_slurm.yaml": (5, 0, 0, 6),
    "zip_parameter_mode.yaml": (8, 6, 0, 9),
    "zip_parameter_mode.json5": (6, 3, 0, 3),
}


def _deps(wf: WorkflowDef) -> dict[str, set[str]]:
    """Job name → names of the jobs it depends on."""
    names = [job.name for job in wf.jobs]
    return {job.name: {names[i] for i in job.depends_on} for job in wf.jobs}


def test_every_copied_spec_is_listed() -> None:
    on_disk = {p.name for p in SPECS.iterdir() if p.is_file()}
    assert on_disk == set(COUNTS)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_counts_match_torc(name: str) -> None:
    wf = load_spec(SPECS / name)
    counts = (len(wf.jobs), len(wf.files), len(wf.user_data), wf.edges())
    assert counts == COUNTS[name]


# --- spot checks: specific edges and values, per spec ---------------------------------


def _chained_allocations(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    assert deps == {"step1": set(), "step2": {"step1"}, "step3": {"step2"}, "step4": {"step3"}}
    assert wf.extras["slurm_schedulers"][0]["serialize_allocations"] is True
    assert wf.jobs[0].resources.runtime_s == 7200


def _dataset_fanin(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    assert deps["combine"] == {f"worker_{i}" for i in range(5)}
    assert all(deps[f"worker_{i}"] == set() for i in range(5))
    settings = wf.extras["job_settings"]
    assert settings["combine"]["input_datasets"] == ["partitioned_output"]
    assert settings["worker_3"]["output_datasets"] == ["partitioned_output"]
    assert wf.extras["datasets"][0]["hash_mode"] == "manifest"


def _dataset_hash_modes(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    assert deps["process_to_critical"] == {"generate_intermediate"}
    assert deps["final_report"] == {"process_to_critical", "generate_logs"}
    assert [d["hash_mode"] for d in wf.extras["datasets"]] == ["manifest", "content", "none"]


def _direct_mode_checkpointing(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    assert deps["evaluate_best"] == {"train_model_0", "train_model_1", "train_model_2"}
    assert deps["train_model_1"] == {"prepare_data"}
    jobs = {j.name: j for j in wf.jobs}
    assert jobs["evaluate_best"].input_files == ("model_0", "model_1", "model_2")
    assert jobs["train_model_2"].failure_handler == "checkpoint_retry"
    assert wf.extras["execution_config"]["sigterm_lead_seconds"] == 45


def _distributed_training_dataset(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    assert deps["aggregate_models"] == {f"train_worker_{i}" for i in range(4)}
    assert deps["train_worker_2"] == {"preprocess"}
    assert deps["evaluate"] == {"aggregate_models"}
    assert deps["generate_report"] == {"evaluate"}


def _dynamic_orchestrator_local(wf: WorkflowDef) -> None:
    assert [(j.name, j.priority) for j in wf.jobs] == [
        ("orch_caseA_g00", 5),
        ("orch_caseB_g00", 5),
    ]
    assert wf.extras["dynamic_jobs"] == {"max_iterations": 10}
    assert wf.jobs[0].resources.memory_mib == 128


def _failure_handler_demo(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    assert deps["summary"] == {"flaky_job_2", "reliable_job"}
    assert deps["reliable_job"] == {"flaky_job_1"}
    assert wf.extras["failure_handlers"][0]["rules"][2] == {
        "exit_codes": [12],
        "match_all_exit_codes": False,
        "max_retries": 3,
        "retry_delay": 0,  # jobstream's back-off, off unless set
        "retry_backoff": 2.0,
        "retry_delay_max": "PT1H",
    }


def _failure_handler_simulation(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    assert deps["aggregate_results_m2_s1"] == {"simulate_m2_s1"}
    assert deps["simulate_m0_s0"] == set()
    assert {j.failure_handler for j in wf.jobs[:9]} == {"simulation_recovery"}


def _fan_in_with_regexes(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    assert deps["regional_summary_north"] == {f"simulate_north_{s:03d}" for s in range(6)}
    assert deps["global_report"] == {
        f"regional_summary_{r}" for r in ("north", "south", "east", "west")
    }
    assert deps["simulate_east_003"] == {"fetch_config"}
    jobs = {j.name: j for j in wf.jobs}
    assert jobs["regional_summary_west"].input_files == tuple(f"sim_west_{s:03d}" for s in range(6))


def _hundred_jobs_parameterized(wf: WorkflowDef) -> None:
    assert [j.name for j in wf.jobs] == [f"job_{i:03d}" for i in range(1, 101)]
    assert wf.jobs[41].command == "echo hello 42"
    assert wf.jobs[0].resources.runtime_s == 60


def _hundred_jobs_workflow(wf: WorkflowDef) -> None:
    # Older torc's ``resource_requirements_name`` is today's ``resource_requirements``.
    assert {j.resource_requirements for j in wf.jobs} == {"minimal"}
    assert wf.jobs[99].name == "job_100"
    assert wf.jobs[0].resources.memory_mib == 1024


def _hyperparameter_sweep_shared_params(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    train = [n for n in deps if n.startswith("train_")]
    assert len(train) == 3 * 3 * 2  # "This creates 3 * 3 * 2 = 18 training jobs"
    assert deps["train_lr0.0010_bs32_optsgd"] == {"prepare_train_data", "prepare_val_data"}
    assert deps["aggregate_results_lr0.0100_bs64_optadam"] == {"train_lr0.0100_bs64_optadam"}


def _labeled_jobs(wf: WorkflowDef) -> None:
    assert _deps(wf)["postprocess"] == {f"simulate_{i}" for i in range(1, 5)}
    assert wf.extras["job_settings"] == {"postprocess": {"label": "windows"}}


def _multi_stage_barrier_pattern(wf: WorkflowDef) -> None:
    # Older torc's ``blocked_by`` / ``blocked_by_regexes`` are ``depends_on(_regexes)``.
    deps = _deps(wf)
    names = [j.name for j in wf.jobs]
    assert sum(n.startswith("stage1_process_") for n in names) == 1000
    assert sum(n.startswith("stage2_analyze_") for n in names) == 1000
    assert sum(n.startswith("stage3_aggregate_") for n in names) == 100
    assert len(deps["barrier_stage1_complete"]) == 1000
    assert deps["stage2_analyze_042"] == {"barrier_stage1_complete"}
    assert len(deps["barrier_stage3_complete"]) == 100
    assert deps["final_report"] == {"barrier_stage3_complete"}


def _parameterized_from_csv(wf: WorkflowDef) -> None:
    assert [j.name for j in wf.jobs] == [
        "train_resnet_cifar10_bs32",
        "train_resnet_cifar10_bs64",
        "train_vit_imagenet_bs16",
        "train_vit_imagenet_bs32",
    ]
    assert wf.jobs[1].command == 'echo "training resnet on cifar10 lr=0.0001 batch_size=64"'
    assert wf.files[2].path == "train_vit_imagenet_bs16.dat"


def _parameterized_from_json(wf: WorkflowDef) -> None:
    assert wf.jobs[3].name == "train_vit_imagenet_bs32"
    assert wf.jobs[3].command == 'echo "training vit on imagenet lr=0.0001 batch_size=32"'


def _parameterized_shared_table(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    assert deps["eval_vit_imagenet_bs16"] == {"train_vit_imagenet_bs16"}
    assert deps["aggregate"] == {
        "eval_resnet_cifar10_bs32",
        "eval_resnet_cifar10_bs64",
        "eval_vit_imagenet_bs16",
        "eval_vit_imagenet_bs32",
    }
    assert wf.files[0].path == "models/resnet_cifar10_bs32.pt"


def _parameterized_user_data(wf: WorkflowDef) -> None:
    data = {d.name: d.data for d in wf.user_data}
    assert data["config_full"] == {
        "experiment": "full",
        "learning_rate": 0.001,
        "output_dir": "/results/full",
    }
    jobs = {j.name: j for j in wf.jobs}
    assert jobs["train_ablation"].input_user_data == ("config_ablation",)


def _resource_monitoring_demo(wf: WorkflowDef) -> None:
    monitor = wf.extras["resource_monitor"]
    assert monitor["jobs"]["granularity"] == "time_series"
    assert monitor["compute_node"]["enabled"] is True
    assert wf.extras["slurm_defaults"]["mail-type"] == "BEGIN,END,FAIL"
    assert wf.jobs[1].resources.memory_mib == 3 * 1024


def _ro_crate_provenance(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    assert deps == {
        "register_scripts": set(),
        "preprocess": set(),
        "analyze": {"preprocess"},
        "transform": {"preprocess"},
        "generate_report": {"analyze"},
    }
    jobs = {j.name: j for j in wf.jobs}
    assert jobs["transform"].command == (
        "python examples/scripts/ro_crate_transform.py "
        "'data/clean_data.csv' 'output/processed.json'"
    )
    assert jobs["generate_report"].input_files == ("summary",)


def _sample_workflow(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    assert deps["data_validation"] == {"data_download"}
    assert deps["data_analysis"] == {"data_validation"}
    assert [d.is_ephemeral for d in wf.user_data] == [True, False, False]
    assert wf.extras["file_settings"]["validation_script"] == {"st_mtime": 1640995200.0}


def _simple_retry(wf: WorkflowDef) -> None:
    assert _deps(wf) == {"flaky_job": set(), "summary": {"flaky_job"}}


def _simulation_sweep(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    # "1:100:25" is 1, 26, 51, 76: 4 x 4 = 16 simulations, not the comment's 20.
    assert "simulate_T250_P076" in deps
    assert "simulate_T250_P101" not in deps
    assert deps["analyze_T400_P001"] == {"simulate_T400_P001"}
    assert deps["generate_phase_diagram_T300_P051"] == {"analyze_T300_P051"}
    jobs = {j.name: j for j in wf.jobs}
    assert jobs["simulate_T350_P026"].command.startswith("./run_simulation \\\n")


def _slurm_staged_pipeline(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    assert deps["postprocess"] == {f"work_{i:03d}" for i in range(1, 11)}
    assert deps["work_005"] == {"setup"}
    # torc ignores resource_monitor keys it does not know; jobstream keeps them.
    assert wf.extras["resource_monitor"]["metrics"] == ["cpu_percent", "memory_bytes"]
    assert wf.jobs[1].resources.memory_mib == 300 * 1024


def _subgraphs_workflow(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    assert deps["prep_a"] == set()
    assert deps["work_b_3"] == {"prep_b"}
    assert deps["post_a"] == {f"work_a_{i}" for i in range(1, 6)}
    assert deps["final"] == {"post_a", "post_b"}


def _variables_demo(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    assert deps["aggregate"] == {f"train_{i:02d}" for i in range(1, 5)}
    jobs = {j.name: j for j in wf.jobs}
    assert jobs["train_03"].command == (
        "python train.py --shard 3 --img pytorch:2.4 --in /scratch/proj42/clean "
        "--out /shared/proj42/results/run_03.pt"
    )
    assert jobs["aggregate"].env == {"PROJECT": "proj42", "IMAGE": "pytorch:2.4"}
    assert wf.files[0].path == "/scratch/proj42/clean/all.parquet"
    assert {s["account"] for s in wf.extras["slurm_schedulers"]} == {"my_hpc_account"}


def _workflow_actions_data_pipeline(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    datasets = ("users", "transactions", "products", "reviews")
    assert deps["aggregate_data"] == {f"transform_{d}" for d in datasets}
    assert deps["validate_reviews"] == {"download_dataset_reviews"}
    assert deps["generate_report"] == {"aggregate_data"}


def _workflow_actions_multi_class_slurm(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    assert deps["postprocess"] == {
        f"{kind}_{i:02d}" for kind in ("regular", "bigmem", "gpu") for i in range(1, 11)
    }
    assert len(wf.extras["actions"]) == 4


def _workflow_actions_simple(wf: WorkflowDef) -> None:
    assert _deps(wf) == {"setup": set(), "process": {"setup"}, "finalize": {"process"}}
    assert wf.user == "demo"


def _workflow_actions_simple_slurm(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    assert deps["finalize"] == {"process1", "process2", "process3"}
    assert deps["process2"] == {"setup"}


def _zip_parameter_mode(wf: WorkflowDef) -> None:
    deps = _deps(wf)
    assert "train_mnist_cnn" in deps
    assert "train_mnist_resnet" not in deps
    assert deps["evaluate_imagenet_transformer"] == {"train_imagenet_transformer"}
    if "aggregate_results" in deps:
        assert deps["aggregate_results"] == {
            "evaluate_cifar10_resnet",
            "evaluate_mnist_cnn",
            "evaluate_imagenet_transformer",
        }
        assert deps["train_cifar10_resnet"] == {"setup_environment"}


CHECKS: dict[str, Callable[[WorkflowDef], None]] = {
    "chained_allocations.yaml": _chained_allocations,
    "dataset_fanin.yaml": _dataset_fanin,
    "dataset_hash_modes.yaml": _dataset_hash_modes,
    "direct_mode_checkpointing.yaml": _direct_mode_checkpointing,
    "distributed_training_dataset.yaml": _distributed_training_dataset,
    "dynamic_orchestrator_local.yaml": _dynamic_orchestrator_local,
    "failure_handler_demo.yaml": _failure_handler_demo,
    "failure_handler_simulation.yaml": _failure_handler_simulation,
    "failure_handler_simulation.json": _failure_handler_simulation,
    "fan_in_with_regexes.yaml": _fan_in_with_regexes,
    "hundred_jobs_parameterized.yaml": _hundred_jobs_parameterized,
    "hundred_jobs_workflow.yaml": _hundred_jobs_workflow,
    "hyperparameter_sweep_shared_params.yaml": _hyperparameter_sweep_shared_params,
    "hyperparameter_sweep_shared_params.json5": _hyperparameter_sweep_shared_params,
    "labeled_jobs.yaml": _labeled_jobs,
    "multi_stage_barrier_pattern.yaml": _multi_stage_barrier_pattern,
    "parameterized_from_csv.yaml": _parameterized_from_csv,
    "parameterized_from_json.yaml": _parameterized_from_json,
    "parameterized_shared_table.yaml": _parameterized_shared_table,
    "parameterized_user_data.yaml": _parameterized_user_data,
    "resource_monitoring_demo.yaml": _resource_monitoring_demo,
    "ro_crate_provenance.yaml": _ro_crate_provenance,
    "sample_workflow.yaml": _sample_workflow,
    "simple_retry.yaml": _simple_retry,
    "simulation_sweep.yaml": _simulation_sweep,
    "simulation_sweep.json5": _simulation_sweep,
    "slurm_staged_pipeline.json5": _slurm_staged_pipeline,
    "subgraphs_workflow.yaml": _subgraphs_workflow,
    "variables_demo.yaml": _variables_demo,
    "variables_demo.json": _variables_demo,
    "variables_demo.json5": _variables_demo,
    "workflow_actions_data_pipeline.yaml": _workflow_actions_data_pipeline,
    "workflow_actions_multi_class_slurm.yaml": _workflow_actions_multi_class_slurm,
    "workflow_actions_simple.yaml": _workflow_actions_simple,
    "workflow_actions_simple_slurm.yaml": _workflow_actions_simple_slurm,
    "zip_parameter_mode.yaml": _zip_parameter_mode,
    "zip_parameter_mode.json5": _zip_parameter_mode,
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_spot_checks(name: str) -> None:
    CHECKS[name](load_spec(SPECS / name))


def test_the_three_formats_of_one_example_agree() -> None:
    yaml, json, json5 = (
        load_spec(SPECS / f"variables_demo.{s}") for s in ("yaml", "json", "json5")
    )
    assert yaml == json == json5


# --- loader behaviour these specs rely on ---------------------------------------------


def test_parameter_tables_resolve_from_the_working_directory_like_torc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Torc reads ``parameters_file`` relative to the current directory (its repo root)."""
    (tmp_path / "examples" / "yaml").mkdir(parents=True)
    shutil.copytree(SPECS / "examples", tmp_path / "examples", dirs_exist_ok=True)
    spec = tmp_path / "examples" / "yaml" / "parameterized_shared_table.yaml"
    shutil.copy(SPECS / spec.name, spec)
    monkeypatch.chdir(tmp_path)
    assert len(load_spec("examples/yaml/parameterized_shared_table.yaml").jobs) == 9
    monkeypatch.chdir(tmp_path.parent)  # elsewhere: found in a folder above the spec's
    assert len(load_spec(spec).jobs) == 9


def test_a_missing_parameter_table_names_the_spec_folder(tmp_path: Path) -> None:
    spec = tmp_path / "w.yaml"
    spec.write_text("name: w\njobs:\n  - {name: 'j_{a}', command: x, parameters_file: nope.csv}\n")
    with pytest.raises(SpecError, match="cannot read parameters_file") as info:
        load_spec(spec)
    assert f"'{tmp_path / 'nope.csv'}'" in str(info.value)


def test_old_and_new_name_of_one_key_is_an_error() -> None:
    text = "name: w\njobs:\n  - {name: a, command: x}\n  - name: b\n    command: x\n"
    text += "    depends_on: [a]\n    blocked_by: [a]\n"
    with pytest.raises(SpecError, match="'blocked_by' is the old name of 'depends_on'") as info:
        parse_spec(text, "w.yaml", "yaml")
    assert info.value.line == 7


def test_errors_in_renamed_keys_point_at_the_line_written() -> None:
    text = "name: w\njobs:\n  - name: a\n    command: x\n    blocked_by_job_names: [zz]\n"
    with pytest.raises(SpecError, match="unknown job 'zz'") as info:
        parse_spec(text, "w.yaml", "yaml")
    assert info.value.line == 5


def test_old_action_scheduler_name() -> None:
    wf = parse_spec(
        """
name: w
jobs: [{name: a, command: x}]
slurm_schedulers: [{name: s, account: acct}]
actions:
  - {trigger_type: on_workflow_start, action_type: schedule_nodes,
     scheduler_name: s, scheduler_type: slurm}
""",
        "w.yaml",
        "yaml",
    )
    assert wf.extras["actions"][0]["scheduler"] == "s"


def test_dataset_variables_are_substituted_and_make_readers_wait_for_every_writer() -> None:
    wf = parse_spec(
        """
name: w
datasets: [{name: out, path: /d/out/}]
jobs:
  - {name: "w_{i}", command: "write ${datasets.output.out}", parameters: {i: "1:3"}}
  - {name: r, command: "read ${datasets.input.out}"}
""",
        "w.yaml",
        "yaml",
    )
    assert _deps(wf)["r"] == {"w_1", "w_2", "w_3"}
    assert wf.jobs[3].command == "read /d/out/"
    assert wf.extras["job_settings"]["w_2"] == {"output_datasets": ["out"]}


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("jobs: [{name: a, command: x, input_datasets: [nope]}]", "unknown dataset 'nope'"),
        ("jobs: [{name: a, command: 'x ${datasets.input.nope}'}]", "unknown dataset 'nope'"),
        (
            "datasets: [{name: d, path: p}, {name: d, path: q}]\njobs: [{name: a, command: x}]",
            "duplicate datasets name 'd'",
        ),
        (
            "datasets: [{name: d, path: p, hash_mode: md5}]\njobs: [{name: a, command: x}]",
            "invalid value 'md5'",
        ),
        ("jobs: [{name: a, command: x, label: ' gpu'}]", "a label must be non-empty"),
        ("jobs: [{name: a, command: x, label: ''}]", "a label must be non-empty"),
    ],
)
def test_dataset_and_label_mistakes_are_errors(snippet: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(f"name: w\n{snippet}\n", "w.yaml", "yaml")


def test_labels_are_templates() -> None:
    wf = parse_spec(
        "name: w\njobs:\n  - {name: 'j_{os}', command: x, label: '{os}', parameters: {os: [linux, win]}}\n",
        "w.yaml",
        "yaml",
    )
    assert wf.extras["job_settings"] == {"j_linux": {"label": "linux"}, "j_win": {"label": "win"}}
