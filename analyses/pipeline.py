"""Run a resolved selection: ``extract_run`` on the cluster, ``compute_all`` centrally.

Both walk the selection in dependency order. A failing analysis is recorded with a
one-line reason and its dependents are *skipped* (not attempted on missing inputs),
while independent analyses still run: one unreadable PDOS must not cost the user the
energies. The extract document is small JSON by construction and checked against
``MAX_EXTRACT_BYTES`` per analysis so a plugin bug cannot ship megabytes per step.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from analyses.base import Analysis, AnalysisError, ExtractContext
from analyses.compute_inputs import ComputeInputs, StepInput
from analyses.graph import resolve
from analyses.registry import Registry, default_registry
from analyses.results import SCHEMA_VERSION, AnalysisOutput, JSONDict, to_jsonable

__all__ = ["MAX_EXTRACT_BYTES", "compute_all", "extract_run"]

log = logging.getLogger(__name__)

#: Largest JSON an analysis may return from ``extract`` (a band structure is ~0.3 MB).
MAX_EXTRACT_BYTES = 1 << 20
_MAX_WARNINGS = 5


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    if isinstance(exc, AnalysisError):
        return message or type(exc).__name__
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def extract_run(
    run_dir: Path,
    ctx: ExtractContext,
    selection: Iterable[str],
    *,
    registry: Registry | None = None,
    auto_complete: bool = False,
) -> JSONDict:
    """Extract every selected analysis from ``run_dir``; never raises for one analysis.

    The selection is resolved first (raising ``InvalidSelection`` for a bad one). The
    returned document has ``analyses`` (data by name), ``errors`` (name -> reason) and
    ``skipped`` (name -> reason) and is what ``hpcgate extract`` writes.
    """
    reg = registry if registry is not None else default_registry()
    names = resolve(selection, registry=reg, auto_complete=auto_complete, code=ctx.code)
    data: dict[str, JSONDict] = {}
    errors: dict[str, str] = {}
    skipped: dict[str, str] = {}
    seconds: dict[str, float] = {}
    warned: dict[str, list[str]] = {}
    for name in names:
        analysis = reg.get(name)
        failed = [r for r in analysis.requires if r not in data]
        if failed:
            skipped[name] = f"requires {', '.join(failed)}, which did not extract"
            continue
        started = time.perf_counter()
        # Library warnings (sisl's SislWarning/SislInfo) travel back with the data
        # instead of cluttering the job's stderr.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _extract_one(name, analysis, run_dir, ctx, data, errors)
        seconds[name] = round(time.perf_counter() - started, 4)
        messages = list(
            dict.fromkeys(
                str(w.message).splitlines()[0]
                for w in caught
                # ResourceWarnings come from garbage collection of *other* objects.
                if str(w.message) and not issubclass(w.category, ResourceWarning)
            )
        )
        if messages:
            warned[name] = messages[:_MAX_WARNINGS]
    return {
        "schema": SCHEMA_VERSION,
        "code": ctx.code,
        "step_index": ctx.step_index,
        "variant": to_jsonable(dict(ctx.variant)),
        "selection": names,
        "analyses": data,
        "errors": errors,
        "skipped": skipped,
        "warnings": warned,
        "seconds": seconds,
        "versions": {n: reg.get(n).version for n in names},
    }


def _extract_one(
    name: str,
    analysis: Analysis,
    run_dir: Path,
    ctx: ExtractContext,
    data: dict[str, JSONDict],
    errors: dict[str, str],
) -> None:
    """Extract one analysis into ``data`` or record why it failed in ``errors``."""
    upstream = {r: data[r] for r in analysis.requires}
    try:
        raw = analysis.extract(run_dir, ctx.with_upstream(upstream))
        result = to_jsonable(raw)
        if not isinstance(result, dict):
            raise AnalysisError(f"extract returned {type(raw).__name__}, not a dict")
        size = len(json.dumps(result, allow_nan=False))
        if size > MAX_EXTRACT_BYTES:
            raise AnalysisError(
                f"extracted data is {size} bytes (limit {MAX_EXTRACT_BYTES}): plugin bug"
            )
        data[name] = result
    except Exception as exc:  # recorded per analysis; the others still run
        errors[name] = _one_line(exc)
        if isinstance(exc, AnalysisError):  # expected: the run lacks something
            log.info("extraction of %s failed in %s: %s", name, run_dir, errors[name])
        else:  # a plugin bug or an unreadable file: keep the traceback in the logs
            log.warning("extraction of %s failed in %s", name, run_dir, exc_info=True)


def compute_all(
    selection: Iterable[str],
    steps: Sequence[StepInput | Mapping[str, Any]],
    *,
    code: str = "",
    options: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
) -> dict[str, JSONDict]:
    """Compute every selected analysis over a calculation's steps.

    ``steps`` are :class:`StepInput` or dicts (``index``, ``label``, ``variant``, ``data``
    being an extract document or its ``analyses`` mapping). Returns name ->
    ``AnalysisOutput.to_dict()``, or ``{"name": ..., "error": reason}`` for a failure.
    """
    reg = registry if registry is not None else default_registry()
    names = resolve(selection, registry=reg, code=code or None)
    inputs = ComputeInputs(
        steps=tuple(s if isinstance(s, StepInput) else StepInput.from_dict(s) for s in steps),
        code=code,
        options=dict(options or {}),
    )
    done: dict[str, AnalysisOutput] = {}
    results: dict[str, JSONDict] = {}
    for name in names:
        analysis = reg.get(name)
        failed = [r for r in analysis.requires if r not in done]
        if failed:
            results[name] = {
                "name": name,
                "title": analysis.title,
                "error": f"requires {', '.join(failed)}, which failed",
            }
            continue
        try:
            upstream = {r: done[r] for r in analysis.requires}
            output = analysis.compute(inputs.with_upstream(upstream))
            done[name] = output
            results[name] = output.to_dict()
        except Exception as exc:  # recorded per analysis; the others still run
            results[name] = {"name": name, "title": analysis.title, "error": _one_line(exc)}
            if isinstance(exc, AnalysisError):
                log.info("compute of %s failed: %s", name, results[name]["error"])
            else:
                log.warning("compute of %s failed", name, exc_info=True)
    return results
