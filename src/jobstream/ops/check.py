"""What a spec expands to, and whether a worker of a given size could run all of it:
the checks made before anything is submitted."""

from __future__ import annotations

from jobstream.errors import JobstreamError
from jobstream.model import Resources, WorkflowDef


def spec_summary(workflow: WorkflowDef) -> dict[str, object]:
    """Counts a user checks before submitting (stable --json field names)."""
    return {
        "name": workflow.name,
        "jobs": len(workflow.jobs),
        "files": len(workflow.files),
        "user_data": len(workflow.user_data),
        "edges": workflow.edges(),
        "roots": sum(1 for job in workflow.jobs if not job.depends_on),
        "classes": workflow.hardware_classes(),
    }


class DoesNotFit(JobstreamError):
    """Some jobs need more than the only worker that will run them offers."""


def require_fit(workflow: WorkflowDef, capacity: Resources) -> None:
    """DoesNotFit naming the first job no worker of ``capacity`` could ever run."""
    unfit = [job for job in workflow.jobs if not job.resources.fits_in(capacity)]
    if unfit:
        raise DoesNotFit(
            f"{len(unfit)} job(s) need more than this machine offers, e.g. {unfit[0].name!r} "
            f"needs {unfit[0].resources.hardware_class()} (have {capacity.hardware_class()}); "
            "pass --cpus/--memory/--gpus to oversubscribe, or run `jobstream server` with workers"
        )
