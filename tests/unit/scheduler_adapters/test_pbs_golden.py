"""Golden PBS scripts: exact text of ``tests/golden/sbatch/pbs_*.sh`` plus ``bash -n``.

Regenerate after an intended template change with ``HPCGATE_UPDATE_GOLDEN=1 pytest
tests/unit/scheduler_adapters/test_pbs_golden.py`` and review the diff.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest

from scheduler_adapters.errors import RenderError
from scheduler_adapters.pbs.adapter import PbsAdapter
from scheduler_adapters.types import ArraySpec, JobSpec, Resources
from tests.helpers.ci import missing

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "sbatch"
WORKDIR = PurePosixPath("/scratch/alice/calc-42")


class _NoRunner:
    scratch_root = PurePosixPath("/scratch")


CASES: dict[str, tuple[str, JobSpec]] = {
    "pbs_pbspro_basic": (
        "pbspro",
        JobSpec(
            name="hpcgate-42-scf-1",
            template="generic.j2",
            workdir=WORKDIR,
            resources=Resources(
                nodes=2, tasks=8, cpus_per_task=2, memory_mb=4096, walltime_s=2 * 86400 + 3600
            ),
            queue="workq",
            account="proj_7",
            environment={"OMP_PLACES": "cores", "GREETING": "it's a $HOME test"},
            context={"command": ["mpirun", "-np", "8", "siesta", "input file.fdf"]},
        ),
    ),
    "pbs_pbspro_array_gpu": (
        "pbspro",
        JobSpec(
            name="hpcgate-42-sweep-1",
            template="generic.j2",
            workdir=WORKDIR,
            resources=Resources(tasks=1, cpus_per_task=4, memory_mb=1500, walltime_s=600, gpus=1),
            array=ArraySpec.of_size(10, 3),
            extra_directives=("-l place=excl",),
            context={"script": 'echo "task $HPCGATE_TASK_INDEX"', "per_task_dir": True},
        ),
    ),
    "pbs_torque_basic": (
        "torque",
        JobSpec(
            name="hpcgate-42-scf-1",
            template="generic.j2",
            workdir=WORKDIR,
            resources=Resources(nodes=2, tasks=8, cpus_per_task=2, memory_mb=4096, walltime_s=3600),
            queue="batch",
            context={"command": ["mpirun", "siesta"]},
        ),
    ),
    "pbs_torque_array": (
        "torque",
        JobSpec(
            name="hpcgate-42-sweep-1",
            template="generic.j2",
            workdir=WORKDIR,
            resources=Resources(walltime_s=300),
            array=ArraySpec((1, 2, 3, 6, 9), 2),
            context={"command": ["true"]},
        ),
    ),
}


def render(flavor: str, spec: JobSpec) -> str:
    return PbsAdapter(_NoRunner(), flavor=flavor).render(spec)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str, check_golden: Callable[[str, str], None]) -> None:
    """Same mechanism as the Slurm goldens (``check_golden`` in this directory's conftest)."""
    flavor, spec = CASES[case]
    check_golden(case, render(flavor, spec))


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_is_valid_bash(case: str) -> None:
    bash = shutil.which("bash")
    if bash is None:
        missing("bash not installed")
    proc = subprocess.run(
        [bash, "-n", str(GOLDEN / f"{case}.sh")], capture_output=True, text=True, check=False
    )
    assert (proc.returncode, proc.stderr) == (0, "")


def test_directives_come_before_any_command() -> None:
    """qsub stops reading #PBS lines at the first command; all of ours are in the header."""
    for case, (flavor, spec) in CASES.items():
        lines = render(flavor, spec).splitlines()
        first_command = next(
            i for i, line in enumerate(lines[1:], 1) if line and not line.startswith("#")
        )
        assert all(not line.startswith("#PBS") for line in lines[first_command:]), case


def test_no_submit_time_options_in_scripts() -> None:
    for case, (flavor, spec) in CASES.items():
        text = render(flavor, spec)
        for option in ("-W depend", "#PBS -h", "#PBS -J", "#PBS -t"):
            assert option not in text, (case, option)


def test_qos_is_refused() -> None:
    spec = JobSpec(
        name="x", template="generic.j2", workdir=WORKDIR, qos="high", context={"command": ["true"]}
    )
    with pytest.raises(RenderError, match="PBS has no QOS"):
        render("pbspro", spec)


def test_unsafe_workdir_is_refused_on_directive_lines() -> None:
    spec = JobSpec(
        name="x",
        template="generic.j2",
        workdir=PurePosixPath("/scratch/a b"),
        context={"command": ["true"]},
    )
    with pytest.raises(RenderError):
        render("torque", spec)
