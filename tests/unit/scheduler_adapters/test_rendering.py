"""Templates: golden files for every named case, bash -n, the `| sh` scanner, filters, overrides."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest

from scheduler_adapters.errors import RenderError
from scheduler_adapters.rendering import (
    Renderer,
    builtin_template_dir,
    directive_value,
    format_mem_mb,
    format_walltime,
    parse_walltime,
    shell_glob,
)
from scheduler_adapters.types import ArraySpec, JobSpec, Resources
from tests.helpers.ci import require_tool

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "golden" / "sbatch"
ROOT = PurePosixPath("/scratch/hpcgate")
EVIL = {
    "EVIL_SUBST": "$(touch /tmp/pwned)",
    "EVIL_QUOTE": "'; touch /tmp/pwned; '",
    "EVIL_BACKTICK": "`touch /tmp/pwned`",
    "MULTILINE": "line1\nline2",
    "GLOB": "*",
}


def _spec(case: str, template: str, **kw: object) -> JobSpec:
    return JobSpec(name=f"hpcgate-{case.replace('_', '-')}", template=template,
                   workdir=ROOT / case, **kw)  # type: ignore[arg-type]


# (case, scheduler, spec): the golden file is tests/golden/sbatch/<case>.sh. Shared with
# tests/integration/test_sbatch_test_only.py, which submits every slurm case with --test-only.
GOLDEN_CASES: list[tuple[str, str, JobSpec]] = [
    ("single", "slurm", _spec(
        "single", "generic.j2",
        resources=Resources(memory_mb=512, walltime_s=600), queue="debug",
        environment={"OMP_NUM_THREADS": "1"},
        context={"command": ["python3", "-c", "print('hello')"]},
    )),
    ("array_throttled", "slurm", _spec(
        "array_throttled", "generic.j2",
        resources=Resources(walltime_s=300), array=ArraySpec.of_size(10, max_concurrent=3),
        context={"command": ["bash", "-c", "echo task $HPCGATE_TASK_INDEX"],
                 "per_task_dir": True},
    )),
    ("chain_step", "slurm", _spec(
        "chain_step", "siesta.j2",
        resources=Resources(tasks=2, memory_mb=1000, walltime_s=1800), queue="debug",
        qos="normal", extra_directives=("--mail-type=NONE",),
        context={"launcher": "srun", "input": "step2.fdf", "output": "step2.out",
                 "validate_command": ["hpcgate-validate", "siesta", "step2.out"]},
    )),
    ("siesta", "slurm", _spec(
        "siesta", "siesta.j2",
        resources=Resources(cpus_per_task=2, memory_mb=2048, walltime_s=2 * 86400 + 3600),
        queue="long",
        context={"modules": ["siesta/4.1.5"], "input": "h2o.fdf", "output": "h2o.out"},
    )),
    ("transiesta_mpi", "slurm", _spec(
        "transiesta_mpi", "siesta.j2",
        resources=Resources(tasks=8, memory_mb=4096, walltime_s=36 * 3600), queue="long",
        context={"launcher": "mpirun", "input": "scat.fdf", "output": "scat.out",
                 "launcher_args": ["--bind-to", "core"],
                 "validate_command": ["hpcgate-validate", "transiesta", "scat.out"]},
    )),
    ("transiesta_electrode", "slurm", _spec(
        "transiesta_electrode", "siesta.j2",
        resources=Resources(walltime_s=600), queue="debug",
        context={"input": "elec.fdf", "output": "elec.out", "program_args": ["--electrode"],
                 "code": "siesta", "validate": True, "hpcgate_command": ["hpcgate"]},
    )),
    ("tbtrans", "slurm", _spec(
        "tbtrans", "tbtrans.j2",
        resources=Resources(walltime_s=600), queue="debug",
        context={"input": "device.fdf", "output": "tbtrans.out", "program": "tbtrans",
                 "code": "siesta", "validate": True, "hpcgate_command": ["hpcgate"],
                 "analyses": ["transiesta_iv"], "variant": {"TS.Voltage": 0.1},
                 "inherit_from": [{"dir": "/scratch/hpcgate/device", "patterns": ["*.TSHS"]}]},
    )),
    ("qe", "slurm", _spec(
        "qe", "qe.j2",
        resources=Resources(tasks=4, memory_mb=3000, walltime_s=7200), queue="long",
        context={"launcher": "srun", "program_args": ["-nk", "2"], "input": "si.scf.in",
                 "output": "si.scf.out",
                 "validate_command": ["hpcgate-validate", "qe", "si.scf.out"]},
    )),
    ("special_chars", "slurm", _spec(
        "special_chars", "generic.j2",
        environment=EVIL,
        context={"command": ["echo", "a b", "$HOME", "it's", '"dq"', ";", "|", "&&", "$(id)"]},
    )),
    ("generic_script", "slurm", _spec(
        "generic_script", "generic.j2",
        context={"script": "set -e\nfor i in 1 2 3; do echo \"$i\"; done\n"},
    )),
    ("local", "local", _spec(
        "local", "generic.j2",
        environment={"GREETING": "hello world"},
        context={"command": ["echo", "$GREETING"]},
    )),
    ("local_array", "local", _spec(
        "local_array", "siesta.j2",
        array=ArraySpec((0, 1, 2, 5), max_concurrent=2),
        context={"per_task_dir": True},
    )),
    # a generic sweep: each task's HPCGATE_PARAM_* are in the script (never a sourced file)
    ("generic_sweep_params", "slurm", _spec(
        "generic_sweep_params", "generic.j2",
        array=ArraySpec.of_size(3),
        context={"command": ["bash", "-c", "echo $HPCGATE_PARAM_X"], "per_task_dir": True,
                 "task_env": {"0": {"HPCGATE_PARAM_X": "1"},
                              "1": {"HPCGATE_PARAM_X": "$(touch /tmp/pwned)"},
                              "2": {"HPCGATE_PARAM_X": "it's; `id`"}}},
    )),
]


@pytest.mark.parametrize(("case", "scheduler", "spec"), GOLDEN_CASES,
                         ids=[c[0] for c in GOLDEN_CASES])
def test_golden(case: str, scheduler: str, spec: JobSpec,
                check_golden: Callable[[str, str], None]) -> None:
    check_golden(case, Renderer(scheduler).render(spec))


@pytest.mark.parametrize("case", [c[0] for c in GOLDEN_CASES])
def test_golden_bash_syntax(case: str) -> None:
    require_tool("bash", install_hint="apt install bash")
    proc = subprocess.run(["bash", "-n", str(GOLDEN_DIR / f"{case}.sh")],
                          capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_golden_dir_has_no_stale_files() -> None:
    """Every non-PBS golden belongs to a case here (pbs_* cases live in the PBS tests)."""
    mine = sorted(p.stem for p in GOLDEN_DIR.glob("*.sh") if not p.stem.startswith("pbs_"))
    assert mine == sorted(c[0] for c in GOLDEN_CASES)


ARGS = ["a b", "$HOME", "it's", "*", "$(touch x)", "`touch y`", '"dq"', ";", "|"]
DUMP = (
    "import json, os, sys; print(json.dumps("
    "[{k: os.environ[k] for k in sys.argv[1].split(',')}, sys.argv[2:]]))"
)


def test_special_characters_stay_literal(tmp_path: Path) -> None:
    """Run a rendered script under bash: nothing is executed, values arrive verbatim."""
    spec = JobSpec(name="lit", template="generic.j2", workdir=PurePosixPath(str(tmp_path)),
                   environment=EVIL,
                   context={"command": ["python3", "-c", DUMP, ",".join(EVIL), *ARGS]})
    script = tmp_path / "lit.sh"
    script.write_text(Renderer("local").render(spec))
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False,
                          cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HPCGATE_LOCAL_JOB_ID": "t1"})
    assert proc.returncode == 0
    assert json.loads(proc.stdout.splitlines()[0]) == [EVIL, ARGS]
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "y").exists()
    assert not Path("/tmp/pwned").exists()
    assert (tmp_path / ".hpcgate" / "t1.ec").read_text() == "0\n"


# ------------------------------------------------------ the `| sh` scanner
EXPR_RE = re.compile(r"{{-?(.*?)-?}}", re.DOTALL)
# Typed or validated values that may appear unquoted (JobSpec validates name/queue/
# account/qos; extra directives are single lines by construction; ints are ints).
TYPED_FIELDS = {
    "spec.name", "spec.queue", "spec.account", "spec.qos", "array_range", "directive", "key",
    "resources.nodes", "resources.tasks", "resources.cpus_per_task", "resources.gpus",
    "pbs_total_mem_mb",
}
SAFE_SUFFIXES = (
    re.compile(r"\|\s*sh$"),
    re.compile(r"\|\s*map\(\s*\"sh\"\s*\)\s*\|\s*join\(\s*\"[^\"]*\"\s*\)$"),
    re.compile(r"\|\s*(dv|glob|int|mem|walltime)(\(.*\))?$"),
)
SAFE_CALLS = (re.compile(r"^fail\("), re.compile(r"^launch\.launcher\("))


def unsafe_expressions(text: str) -> list[str]:
    bad = []
    for m in EXPR_RE.finditer(text):
        expr = " ".join(m.group(1).split())
        if expr in TYPED_FIELDS:
            continue
        if any(p.search(expr) for p in SAFE_SUFFIXES) or any(p.search(expr) for p in SAFE_CALLS):
            continue
        bad.append(expr)
    return bad


def test_scanner_flags_unquoted_values() -> None:
    text = '{{ context.x }} {{ spec.name }} {{ v | sh }} {{ context.cmd | map("sh") | join(" ") }}'
    assert unsafe_expressions(text) == ["context.x"]


@pytest.mark.parametrize("path", sorted(builtin_template_dir().glob("*.j2")), ids=lambda p: p.name)
def test_templates_quote_every_free_text_value(path: Path) -> None:
    assert unsafe_expressions(path.read_text()) == []


# ------------------------------------------------------------------ filters
@pytest.mark.parametrize(
    ("seconds", "days", "text"),
    [(0, True, "00:00:00"), (59, True, "00:00:59"), (3600, True, "01:00:00"),
     (86400, True, "1-00:00:00"), (90061, True, "1-01:01:01"), (90061, False, "25:01:01")],
)
def test_format_walltime(seconds: int, days: bool, text: str) -> None:
    assert format_walltime(seconds, days=days) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5", 300), ("05:30", 330), ("1-2", 93600), ("1-02:03", 93780), ("00:00.004", 0.004),
     ("2-00:00:00", 172800)],
)
def test_parse_walltime_slurm_forms(text: str, seconds: float) -> None:
    assert parse_walltime(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "UNLIMITED", "1:2:3:4", "-5", "1-", "a:b"])
def test_parse_walltime_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_walltime(text)


@pytest.mark.parametrize(("mb", "style", "text"),
                         [(512, "slurm", "512M"), (4096, "slurm", "4G"), (2048, "pbs", "2gb"),
                          (1000, "pbs", "1000mb")])
def test_format_mem(mb: int, style: str, text: str) -> None:
    assert format_mem_mb(mb, style) == text


@pytest.mark.parametrize("value", ["/a b", "x;y", "$(id)", "a\nb", "'q'", ""])
def test_directive_value_rejects_unsafe(value: str) -> None:
    with pytest.raises(RenderError):
        directive_value(value)


@pytest.mark.parametrize("value", ["*.DM", "out/*.xml", "siesta.[TH]SHS", "a?.fdf"])
def test_glob_accepts_plain_patterns(value: str) -> None:
    assert shell_glob(value) == value


@pytest.mark.parametrize("value", ["*; rm -rf ~", "$(id)", "../*", "/etc/*", "a b", "`x`", ""])
def test_glob_rejects_unsafe(value: str) -> None:
    with pytest.raises(RenderError):
        shell_glob(value)


def test_unsafe_workdir_is_refused_on_directive_lines() -> None:
    spec = JobSpec(name="x", template="generic.j2", workdir=PurePosixPath("/scratch/a b"),
                   context={"command": ["true"]})
    with pytest.raises(RenderError):
        Renderer("slurm").render(spec)


def test_strict_undefined_and_unknown_launcher() -> None:
    with pytest.raises(RenderError, match="command"):
        Renderer("slurm").render(_spec("x", "generic.j2"))
    with pytest.raises(RenderError, match="unknown launcher"):
        Renderer("slurm").render(_spec("x", "siesta.j2", context={"launcher": "aprun"}))
    with pytest.raises(RenderError, match="not found"):
        Renderer("lsf").render(_spec("x", "generic.j2", context={"command": ["true"]}))


def test_override_directory_wins(tmp_path: Path) -> None:
    (tmp_path / "_slurm_directives.j2").write_text(
        "#!/bin/bash\n#SBATCH --job-name={{ spec.name }}\n#SBATCH --constraint=site-override\n"
    )
    text = Renderer("slurm", [tmp_path]).render(_spec("x", "generic.j2",
                                                      context={"command": ["true"]}))
    assert text.splitlines()[:3] == ["#!/bin/bash", "#SBATCH --job-name=hpcgate-x",
                                     "#SBATCH --constraint=site-override"]
    assert "# ---- hpcgate prologue" in text
