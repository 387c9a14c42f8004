"""msgspec Structs mirroring torc's workflow spec file format, field for field.

These are the *file* shapes (before parameter expansion), kept apart from the expanded
:mod:`jobstream.model` types. Every struct forbids unknown fields, so a typo is an
error instead of a silently ignored key; the field lists follow torc's ``WorkflowSpec``
(``src/client/workflow_spec.rs``) including the keys jobstream only stores in
``WorkflowDef.extras``. Superset relaxations (documented in ``jobstream.spec``):
``env`` values may be numbers or booleans, ``memory`` may be a byte count and
``runtime`` a number of seconds, ``metadata`` may be a mapping or a JSON string.
``resource_monitor`` ignores keys it does not know, as torc's ``ResourceMonitorConfig``
(``#[serde(default)]`` without ``deny_unknown_fields``) does; ``jobstream.spec.extras``
still copies them into the stored section.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

EnvValue = str | int | float | bool
ParameterMode = Literal["product", "zip"]


class _Raw(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every file-format struct: unknown keys are errors."""


class RawStdio(_Raw):
    mode: Literal["separate", "combined", "no_stdout", "no_stderr", "none"] = "separate"
    delete_on_success: bool = False


class RawJob(_Raw):
    name: str
    command: str
    invocation_script: str | None = None
    env: dict[str, EnvValue] | None = None
    cancel_on_blocking_job_failure: bool | None = None
    supports_termination: bool | None = None
    resource_requirements: str | None = None
    failure_handler: str | None = None
    depends_on: list[str] | None = None
    depends_on_regexes: list[str] | None = None
    input_files: list[str] | None = None
    input_file_regexes: list[str] | None = None
    output_files: list[str] | None = None
    output_file_regexes: list[str] | None = None
    input_user_data: list[str] | None = None
    input_user_data_regexes: list[str] | None = None
    output_user_data: list[str] | None = None
    output_user_data_regexes: list[str] | None = None
    scheduler: str | None = None
    parameters: dict[str, Any] | None = None
    parameter_mode: ParameterMode | None = None
    use_parameters: list[str] | None = None
    parameters_file: str | None = None
    use_parameters_file: bool | None = None
    stdio: RawStdio | None = None
    priority: int | None = None
    label: str | None = None
    input_datasets: list[str] | None = None
    output_datasets: list[str] | None = None


class RawFile(_Raw):
    name: str
    path: str
    identifier: str | None = None
    st_mtime: float | None = None
    parameters: dict[str, Any] | None = None
    parameter_mode: ParameterMode | None = None
    use_parameters: list[str] | None = None
    parameters_file: str | None = None
    use_parameters_file: bool | None = None


class RawUserData(_Raw):
    name: str
    data: Any = None
    is_ephemeral: bool | None = None
    parameters: dict[str, Any] | None = None
    parameter_mode: ParameterMode | None = None
    use_parameters: list[str] | None = None
    parameters_file: str | None = None
    use_parameters_file: bool | None = None


class RawDataset(_Raw):
    """A directory many jobs write into; its readers wait for every writer (torc 'datasets')."""

    name: str
    path: str
    hash_mode: Literal["manifest", "content", "none"] = "manifest"
    description: str | None = None


class RawResourceRequirements(_Raw):
    name: str
    num_cpus: int
    memory: str | int
    num_gpus: int = 0
    num_nodes: int = 1
    runtime: str | int = "PT1H"


class RawFailureRule(_Raw):
    exit_codes: list[int] = []
    match_all_exit_codes: bool = False
    recovery_script: str | None = None
    max_retries: int = 3
    retry_delay: str | int = 0
    retry_backoff: float = 2.0
    retry_delay_max: str | int = "PT1H"


class RawFailureHandler(_Raw):
    name: str
    rules: list[RawFailureRule]


class RawSlurmScheduler(_Raw, kw_only=True):
    name: str | None = None
    account: str
    gres: str | None = None
    mem: str | None = None
    nodes: int = 1
    ntasks_per_node: int | None = None
    partition: str | None = None
    qos: str | None = None
    tmp: str | None = None
    walltime: str = "01:00:00"
    extra: str | None = None
    serialize_allocations: bool | None = None


class RawAction(_Raw):
    trigger_type: str
    action_type: str
    jobs: list[str] | None = None
    job_name_regexes: list[str] | None = None
    commands: list[str] | None = None
    scheduler: str | None = None
    scheduler_type: str | None = None
    num_allocations: int | None = None
    start_one_worker_per_node: bool | None = None
    max_parallel_jobs: int | None = None
    persistent: bool | None = None


class RawJobMonitor(_Raw):
    enabled: bool = False
    granularity: str | None = None


class RawComputeNodeMonitor(_Raw):
    enabled: bool = False
    granularity: str | None = None
    cpu: bool = True
    memory: bool = True


class RawResourceMonitor(msgspec.Struct, kw_only=True):
    """Not a ``_Raw``: unknown keys are ignored here, as torc ignores them."""

    enabled: bool | None = None
    granularity: str | None = None
    sample_interval_seconds: int = 10
    flush_interval_seconds: int = 300
    generate_plots: bool = False
    jobs: RawJobMonitor | None = None
    compute_node: RawComputeNodeMonitor | None = None


class RawExecutionConfig(_Raw):
    mode: Literal["direct", "slurm", "auto"] = "direct"
    sigkill_headroom_seconds: int | None = None
    timeout_exit_code: int | None = None
    staggered_start: bool | None = None
    stdio: RawStdio | None = None
    limit_resources: bool | None = None
    termination_signal: str | None = None
    sigterm_lead_seconds: int | None = None
    oom_exit_code: int | None = None
    srun_termination_signal: str | None = None
    enable_cpu_bind: bool | None = None
    srun_mpi: str | None = None


class RawWorkflow(_Raw, kw_only=True):
    name: str
    user: str | None = None
    description: str | None = None
    project: str | None = None
    metadata: str | dict[str, Any] | None = None
    parameters: dict[str, Any] | None = None
    parameters_file: str | None = None
    variables: dict[str, str] | None = None
    env: dict[str, EnvValue] | None = None
    jobs: list[RawJob]
    files: list[RawFile] | None = None
    user_data: list[RawUserData] | None = None
    datasets: list[RawDataset] | None = None
    resource_requirements: list[RawResourceRequirements] | None = None
    failure_handlers: list[RawFailureHandler] | None = None
    slurm_schedulers: list[RawSlurmScheduler] | None = None
    slurm_defaults: dict[str, Any] | None = None
    resource_monitor: RawResourceMonitor | None = None
    actions: list[RawAction] | None = None
    dynamic_jobs: dict[str, Any] | None = None
    execution_config: RawExecutionConfig | None = None
    use_pending_failed: bool | None = None
    enable_ro_crate: bool | None = None
    access_groups: list[str] | None = None
    compute_node_expiration_buffer_seconds: int | None = None
    compute_node_wait_for_new_jobs_seconds: int | None = None
    compute_node_ignore_workflow_completion: bool | None = None
    compute_node_wait_for_healthy_database_minutes: int | None = None
    jobs_sort_method: str | None = None


EXTRA_KEYS: tuple[str, ...] = (
    "project",
    "metadata",
    "datasets",
    "failure_handlers",
    "slurm_schedulers",
    "slurm_defaults",
    "resource_monitor",
    "actions",
    "dynamic_jobs",
    "execution_config",
    "use_pending_failed",
    "enable_ro_crate",
    "access_groups",
    "compute_node_expiration_buffer_seconds",
    "compute_node_wait_for_new_jobs_seconds",
    "compute_node_ignore_workflow_completion",
    "compute_node_wait_for_healthy_database_minutes",
    "jobs_sort_method",
)
"""Top-level sections jobstream stores in ``WorkflowDef.extras`` without acting on them
(of ``datasets`` only the job edges they imply are acted on, see ``jobstream.spec.deps``)."""
