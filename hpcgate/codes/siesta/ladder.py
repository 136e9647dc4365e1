"""Inputs of a TranSIESTA bias ladder: electrode, device and TBtrans steps from the base fdfs.

The plan (``hpcgate.domain.ladder``) fixes the DAG; this module reads the fdf files and
refuses, at creation, everything TranSIESTA would only discover on the cluster:

* the device fdf must be a TranSIESTA run (``SolutionMethod transiesta``) and the
  electrode fdfs must not be;
* the names in ``electrodes`` must be exactly those of the device's ``TS.Elecs`` block
  (an unknown or unmapped name is a 422 naming it);
* each ``TS.Elec.<name>`` block must read ``<label>.TSHS`` as a plain file name, where
  ``<label>`` is the ``SystemLabel`` of the electrode fdf mapped to that name: that is
  the file the electrode step writes and the device step inherits;
* two different electrode fdfs, or an electrode and the device, must not share a
  ``SystemLabel`` (their ``.TSHS`` files would overwrite each other).

Each step's files come from :func:`hpcgate.codes.siesta.inputs.generate_inputs` (fdf checks,
pseudopotentials, keys set the way SIESTA reads them). Device points after 0 V get
``DM.UseSaveDM true`` so TranSIESTA reads the ``.TSDE`` inherited from the previous
point; a point's own ``parameters`` are applied last and win (``DM.UseSaveDM false`` on
one point is how the tests make it fail the way a lab would: TranSIESTA's FATAL).
Only the files the fdf references are staged (the device fdf is not copied into an
electrode's directory), and TBtrans steps get the point's fdf without pseudopotentials.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from hpcgate.codes.plugin import PreparedInputs, check_input_files, check_params
from hpcgate.domain.ladder import ROLE_DEVICE, ROLE_ELECTRODE, ROLE_TBTRANS
from hpcgate.domain.plan import Plan, PlannedStep
from hpcgate.errors import InvalidInput

__all__ = [
    "LADDER_ANALYSIS",
    "TBTRANS_ANALYSES",
    "TBTRANS_OUTPUT",
    "ladder_analyses",
    "prepare_ladder",
    "step_analyses",
]

#: The I-V analysis every ladder computes (extracted from each TBtrans step).
LADDER_ANALYSIS = "transiesta_iv"
#: Analyses that read TBtrans outputs: extracted in TBtrans steps, not in SIESTA ones.
TBTRANS_ANALYSES = frozenset({LADDER_ANALYSIS, "current", "iv_curve", "transmission"})
#: The TBtrans step's stdout (validation and extraction find it by its banner).
TBTRANS_OUTPUT = "tbtrans.out"
_TSHS_KEYS = ("tshs", "hs", "hsfile")


def ladder_analyses(selected: Sequence[str]) -> list[str]:
    """The calculation's analyses: the user's selection plus the ladder's I-V."""
    return [*selected, LADDER_ANALYSIS] if LADDER_ANALYSIS not in selected else list(selected)


def step_analyses(step: PlannedStep, selected: Sequence[str]) -> list[str]:
    """What one step extracts: TBtrans analyses in TBtrans steps, the others elsewhere."""
    if step.meta.get("role") == ROLE_TBTRANS:
        return [a for a in selected if a in TBTRANS_ANALYSES]
    return [a for a in selected if a not in TBTRANS_ANALYSES]


def _norm(label: str) -> str:
    from hpcgate.codes.siesta.fdf import normalise_label

    return normalise_label(label)


def _read_fdf(path: Path) -> Any:
    import sisl.io.siesta as siesta_io

    return siesta_io.fdfSileSiesta(str(path))


def _solution(fdf: Any, where: str) -> str:
    try:
        return str(fdf.get("SolutionMethod", default="diagon"))
    except Exception as exc:  # sisl's parse errors are varied; one line for the user
        raise InvalidInput(f"{where}: cannot read SolutionMethod ({exc})") from None


def _block(fdf: Any, key: str, where: str) -> list[str]:
    try:
        value = fdf.get(key)
    except Exception as exc:  # sisl's parse errors are varied; one line for the user
        raise InvalidInput(f"{where}: cannot read {key} ({exc})") from None
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(line) for line in value]


def _electrode_tshs(fdf: Any, name: str, where: str) -> str:
    """The TSHS file named in ``TS.Elec.<name>``: a plain name, ``./`` allowed."""
    lines = _block(fdf, f"TS.Elec.{name}", where)
    if not lines:
        raise InvalidInput(f"{where}: no %block TS.Elec.{name} for electrode {name!r}")
    for line in lines:
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and _norm(words[0]) in _TSHS_KEYS:
            path = PurePosixPath(words[1])
            if path.is_absolute() or len([p for p in path.parts if p != "."]) != 1:
                raise InvalidInput(
                    f"{where}: TS.Elec.{name} reads {words[1]!r}; hpcgate stages the "
                    "electrode's .TSHS beside the device, so give a plain file name"
                )
            return path.name
    raise InvalidInput(f"{where}: TS.Elec.{name} has no 'TSHS <file>' line")


def _generate(
    base: Path, variants: Sequence[Mapping[str, Any]], out: Path, binary: frozenset[str]
) -> list[tuple[dict[str, str], str, tuple[str, ...]]]:
    """(files, SystemLabel, pseudopotential names) for each variant of one base fdf."""
    from hpcgate.codes.siesta.inputs import check_base_input, generate_inputs

    pseudos = tuple(p.name for p in check_base_input(base).pseudopotentials)
    result = []
    for generated in generate_inputs(base, list(variants), out, chain=False):
        files = {
            str(p.relative_to(generated.directory)): p.read_text(encoding="utf-8", errors="replace")
            for p in sorted(generated.directory.rglob("*"))
            if p.is_file() and str(p.relative_to(generated.directory)) not in binary
        }
        result.append((files, generated.label, pseudos))
    return result


def _electrode_inputs(
    steps: Sequence[PlannedStep], src: Path, tmp: Path, binary: frozenset[str]
) -> tuple[dict[str, str], dict[int, list[PreparedInputs]]]:
    """Electrodes: plain SIESTA runs that save their .TSHS (``siesta --electrode``).

    Returns ({electrode fdf: SystemLabel}, {step index: inputs}).
    """
    labels: dict[str, str] = {}
    out: dict[int, list[PreparedInputs]] = {}
    for step in steps:
        fdf_name = str(step.meta["fdf"])
        ((step_files, label, _),) = _generate(  # checks the fdf first
            src / fdf_name, [{}], tmp / f"e{step.index}", binary
        )
        if "transiesta" in _solution(_read_fdf(src / fdf_name), fdf_name).lower():
            raise InvalidInput(
                f"electrode input {fdf_name}: SolutionMethod is transiesta; an electrode "
                "is a bulk SIESTA run (diagon)"
            )
        if label in labels.values():
            other = next(f for f, lab in labels.items() if lab == label)
            raise InvalidInput(
                f"electrode inputs {other} and {fdf_name} share SystemLabel {label!r}: "
                "their .TSHS files would overwrite each other"
            )
        labels[fdf_name] = label
        context = {
            "template": "siesta.j2",
            "input": fdf_name,
            "output": f"{label}.out",
            "program_args": ["--electrode"],
        }
        out[step.index] = [PreparedInputs(step_files, context)]
    return labels, out


def _electrode_names(
    device: str, fdf: Any, electrode_steps: Sequence[PlannedStep]
) -> tuple[dict[str, str], dict[str, str]]:
    """({electrode name: its fdf}, {normalised name: name in TS.Elecs}), both complete."""
    declared = [line.split()[0] for line in _block(fdf, "TS.Elecs", device) if line.split()]
    if not declared:
        raise InvalidInput(f"{device}: no %block TS.Elecs naming the electrodes")
    mapping: dict[str, str] = {}
    for step in electrode_steps:
        for name in step.meta.get("electrodes", []):
            mapping[str(name)] = str(step.meta["fdf"])
    by_norm = {_norm(n): n for n in declared}
    unknown = [n for n in mapping if _norm(n) not in by_norm]
    if unknown:
        raise InvalidInput(
            f"unknown electrode(s) {', '.join(map(repr, unknown))}: {device}'s TS.Elecs "
            f"block names {', '.join(declared)}"
        )
    unmapped = [n for n in declared if _norm(n) not in {_norm(m) for m in mapping}]
    if unmapped:
        raise InvalidInput(
            f"{device} uses electrode(s) {', '.join(map(repr, unmapped))}, which "
            "'electrodes' does not map to an fdf file"
        )
    return mapping, by_norm


def _check_device(
    src: Path, device: str, electrode_steps: Sequence[PlannedStep], labels: Mapping[str, str]
) -> None:
    """The device is a TranSIESTA run whose electrodes are exactly the mapped ones, each
    reading the ``.TSHS`` its electrode step writes."""
    from hpcgate.codes.siesta.inputs import check_base_input

    check_base_input(src / device)  # syntax, includes, pseudopotentials: one clear line
    fdf = _read_fdf(src / device)
    solution = _solution(fdf, device)
    if "transiesta" not in solution.lower():
        raise InvalidInput(
            f"device input {device}: SolutionMethod is {solution!r}; a ladder needs "
            "SolutionMethod transiesta"
        )
    mapping, by_norm = _electrode_names(device, fdf, electrode_steps)
    for name, elec_fdf in mapping.items():
        wanted = f"{labels[elec_fdf]}.TSHS"
        reads = _electrode_tshs(fdf, by_norm[_norm(name)], device)
        if reads != wanted:
            raise InvalidInput(
                f"{device}: TS.Elec.{by_norm[_norm(name)]} reads {reads!r}, but its "
                f"electrode input {elec_fdf} (SystemLabel {labels[elec_fdf]!r}) "
                f"writes {wanted!r}"
            )


def _device_inputs(
    steps: Sequence[PlannedStep],
    src: Path,
    device: str,
    tmp: Path,
    binary: frozenset[str],
    electrode_labels: Mapping[str, str],
) -> tuple[dict[float, dict[str, str]], tuple[str, ...], dict[int, list[PreparedInputs]]]:
    """Device points: ({bias: files}, pseudopotential names, {step index: inputs})."""
    variants = []
    for step in steps:
        params = dict(step.variant.parameters) if step.variant else {}
        if step.meta.get("previous_bias_v") is not None:
            params = {"DM.UseSaveDM": True, **params}  # the point's own value wins
        variants.append(params)
    generated = _generate(src / device, variants, tmp / "device", binary)
    device_label = generated[0][1]
    if device_label in electrode_labels.values():
        raise InvalidInput(
            f"{device} has the SystemLabel {device_label!r} of an electrode input: "
            "its .TSHS would overwrite the electrode's"
        )
    by_bias: dict[float, dict[str, str]] = {}
    out: dict[int, list[PreparedInputs]] = {}
    context = {"template": "siesta.j2", "input": device, "output": f"{device_label}.out"}
    for step, (step_files, _, _) in zip(steps, generated, strict=True):
        by_bias[float(step.meta["bias_v"])] = step_files
        out[step.index] = [PreparedInputs(step_files, dict(context))]
    return by_bias, generated[0][2], out


def _tbtrans_inputs(
    plan: Plan, device: str, by_bias: Mapping[float, dict[str, str]], pseudos: tuple[str, ...]
) -> dict[int, list[PreparedInputs]]:
    """TBtrans: the point's fdf (it reads TS.Voltage and the electrodes from it) and the
    .TSHS files it inherits; no pseudopotentials."""
    out: dict[int, list[PreparedInputs]] = {}
    for step in plan.steps:
        if step.meta.get("role") != ROLE_TBTRANS:
            continue
        point_files = by_bias[float(step.meta["bias_v"])]
        out[step.index] = [
            PreparedInputs(
                {k: v for k, v in point_files.items() if k not in pseudos},
                {
                    "template": "tbtrans.j2",
                    "input": device,
                    "output": TBTRANS_OUTPUT,
                    "program": "tbtrans",
                },
            )
        ]
    return out


def prepare_ladder(
    plan: Plan, code: str, config: Mapping[str, Any], *, binary: frozenset[str] = frozenset()
) -> dict[int, list[PreparedInputs]]:
    """Every step's files and template context (``template`` names the job template)."""
    if code != "siesta":
        raise InvalidInput(
            f"a transiesta ladder runs SIESTA and TBtrans: use code 'siesta', not {code!r}"
        )
    files = check_input_files(config.get("inputs", {}) or {})
    electrode_steps = [s for s in plan.steps if s.meta.get("role") == ROLE_ELECTRODE]
    device_steps = [s for s in plan.steps if s.meta.get("role") == ROLE_DEVICE]
    device = str(device_steps[0].meta["fdf"])
    for step in plan.steps:
        check_params(step.variant.parameters if step.variant else {})
    for name in [device, *(str(s.meta["fdf"]) for s in electrode_steps)]:
        if name not in files:
            raise InvalidInput(f"the ladder names {name!r}, which is not among the input files")
    with tempfile.TemporaryDirectory(prefix="hpcgate-ladder-") as tmp:
        src = Path(tmp) / "base"
        src.mkdir()
        for name, text in files.items():
            (src / name).write_text(text, encoding="utf-8")
        for name in binary:  # present for the checks; staged as bytes by the dispatcher
            (src / name).touch()
        labels, out = _electrode_inputs(electrode_steps, src, Path(tmp), binary)
        _check_device(src, device, electrode_steps, labels)
        by_bias, pseudos, points = _device_inputs(
            device_steps, src, device, Path(tmp), binary, labels
        )
    return {**out, **points, **_tbtrans_inputs(plan, device, by_bias, pseudos)}
