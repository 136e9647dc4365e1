"""From what a SIESTA/TBtrans stdout showed to the verdict and the report's numbers.

Pure functions of a :class:`~hpcgate.codes.siesta.validate.SiestaAnalyzer` once it has
been fed: the markers' meaning is in that module's docstring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpcgate.codes.report import Verdict

if TYPE_CHECKING:
    from hpcgate.codes.siesta.validate import SiestaAnalyzer

__all__ = ["report_numbers", "verdict"]


def _tbtrans_verdict(run: SiestaAnalyzer) -> tuple[Verdict, tuple[str, ...], str]:
    v = Verdict
    if run.abnormal or run.error_pending:
        return v.ABORTED, ("error", "abnormal"), "TBtrans stopped abnormally"
    if run.end_of_run and not run.currents:
        return v.ABORTED, (), "TBtrans ended without printing a current ('V [V] / I [A]')"
    if run.end_of_run:
        return v.CONVERGED, ("endrun",), "TBtrans reached '>> End of run'"
    return v.INCOMPLETE, ("current",), "no '>> End of run': TBtrans output cut off"


def verdict(run: SiestaAnalyzer) -> tuple[Verdict, tuple[str, ...], str]:
    """Verdict, evidence slots holding its decisive line, fallback reason."""
    v = Verdict
    if run.program == "tbtrans":
        return _tbtrans_verdict(run)
    if run.scf_fatal:
        return v.SCF_NOT_CONVERGED, ("scf_fatal", "side"), "SCF_NOT_CONV (required)"
    if run.geom_fatal:
        return v.GEOMETRY_NOT_CONVERGED, ("geom", "side"), "GEOM_NOT_CONV"
    if run.out_of_time or (run.killed == "walltime" and not run.completed):
        return v.INCOMPLETE, ("oot", "killed", "side"), "stopped at the time limit"
    if run.fatal_item is not None and not run.completed:
        return v.ABORTED, ("side",), run.fatal_item[1]
    if (run.abnormal or run.error_pending or run.killed) and not run.completed:
        # e.g. TranSIESTA: the initial SIESTA cycle failed (warning), then it aborts.
        if run.last_cycle_end == "not_converged":
            return v.SCF_NOT_CONVERGED, ("scf_warn",), "SCF_NOT_CONV, then abort"
        return v.ABORTED, ("error", "killed", "abnormal"), "abnormal termination"
    if run.completed:
        if run.scf_warn or run.messages_scf_warn:
            return v.SCF_NOT_CONVERGED, ("scf_warn", "side"), "tolerated SCF_NOT_CONV"
        if (run.unrelaxed and run.optimization) or run.messages_geom_warn:
            return v.GEOMETRY_NOT_CONVERGED, ("unrelaxed", "side"), "relaxation unconverged"
        return v.CONVERGED, ("completed",), "Job completed"
    return (
        v.INCOMPLETE,
        (),
        "no 'Job completed' nor abort marker: output cut off (walltime kill?) or running",
    )


def _geometry_steps(run: SiestaAnalyzer, full: bool) -> int | None:
    """Counted in a full scan; from the first and last step numbers in a sampled one."""
    if not run.begin_count:
        return 1 if run.scf_started else 0
    if full:
        return run.begin_count
    if run.first_begin is not None and run.last_begin is not None:
        return run.last_begin - run.first_begin + 1
    return None


def report_numbers(run: SiestaAnalyzer, sampled: bool) -> dict[str, Any]:
    """The report's numbers; totals only after a full scan (None when sampled)."""
    full = not sampled
    numbers: dict[str, Any] = {
        "program": run.program or "unknown",
        "version": run.version,
        "energy_total_ev": run.energy_total,
        "fermi_ev": run.fermi,
    }
    if run.program == "tbtrans":
        numbers["bias_v"] = run.bias_v
        numbers["currents_a"] = dict(run.currents)
        return numbers
    numbers.update(
        {
            "last_scf_energy_ev": run.last_eks,
            "scf_iterations_last": run.last_iscf,
            "scf_iterations_total": run.scf_lines if full else None,
            "scf_cycles": run.scf_cycles if full else None,
            "scf_not_converged_warnings": run.scf_warn if full else None,
            "max_force_ev_ang": (
                run.max_force if run.max_force is not None else run.max_force_unconstrained
            ),
            "geometry_steps": _geometry_steps(run, full),
            "dynamics": run.dynamics,
            "scf_must_converge": run.must_converge,
            "max_scf_iterations": run.max_scf,
            "transiesta": run.transiesta,
            "bias_v": run.bias_v if run.transiesta else None,
        }
    )
    return numbers
