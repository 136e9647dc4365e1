"""SIESTA inputs of one variant, built from the base fdf by :mod:`hpcgate.codes.siesta.inputs`.

Import-light: sisl and numpy are imported only when inputs are prepared (on the API's
parse workers), never by the in-job validator that shares this package.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hpcgate.codes.plugin import PreparedInputs, check_params
from hpcgate.errors import InvalidInput

__all__ = ["prepare_siesta"]


def prepare_siesta(
    files: Mapping[str, str],
    main: str,
    params: Mapping[str, Any],
    dependent: bool,
    *,
    binary: frozenset[str] = frozenset(),
) -> PreparedInputs:
    """Build one variant's SIESTA inputs with ``hpcgate.codes.siesta.inputs.generate_inputs``.

    That checks the fdf (syntax, ``%include`` files, a pseudopotential for every species),
    sets keys the way SIESTA reads them (first occurrence wins, any spelling), and applies
    rotations. A dependent chain step restarts from the parent's density matrix
    (``DM.UseSaveDM``; TranSIESTA also its ``.TSDE``), which the job copies in at start.
    """
    import tempfile
    from pathlib import Path

    from hpcgate.codes.siesta.inputs import generate_inputs

    check_params({k: v for k, v in params.items() if k != "rotation"})
    if main not in files:
        raise InvalidInput(f"the main input {main!r} is not among the input files")
    with tempfile.TemporaryDirectory(prefix="hpcgate-siesta-") as tmp:
        src = Path(tmp) / "base"
        src.mkdir()
        for name, text in files.items():
            (src / name).write_text(text, encoding="utf-8")
        for name in binary:  # present for the checks (a .psml, an .ion.nc); staged as bytes
            (src / name).touch()
        (generated,) = generate_inputs(src / main, [dict(params)], Path(tmp) / "out", chain=False)
        out = {
            str(p.relative_to(generated.directory)): p.read_text(encoding="utf-8", errors="replace")
            for p in sorted(generated.directory.rglob("*"))
            if p.is_file() and str(p.relative_to(generated.directory)) not in binary
        }
        for name, text in files.items():  # files the fdf does not reference (electrodes...)
            out.setdefault(name, text)
    if dependent:
        header = (
            "# hpcgate: continue from the parent step (first occurrence wins)\nDM.UseSaveDM true\n"
        )
        out[main] = header + out[main]
    return PreparedInputs(out, {"input": main, "output": f"{generated.label}.out"})
