"""The 1-D Au chain ladder (hpcgate/demo_data/au_chain, also the demo's), and its reference run.

The reference is the same ladder run directly with the real ``siesta``/``tbtrans``, once
per session, WITHOUT hpcgate: the fdf is edited by plain text substitution (not sisl,
not ``generate_inputs``), files are copied by hand, and the currents are read with sisl
(TBT.nc) and a regex (stdout). Tests compare what hpcgate produced with these numbers, so
nothing is hard-coded and a bug in hpcgate's generation cannot hide in both sides.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.siesta_env import siesta_case

#: The ladder every real-SIESTA test here uses: >= 3 finite biases, one negative.
BIASES = (0.0, 0.1, 0.2, -0.1)
_CURRENT = re.compile(r"V \[V\] / I \[A\]:\s*(\S+)\s*V\s*/\s*(\S+)\s*A")


@dataclass(frozen=True)
class ReferencePoint:
    bias_v: float
    current_stdout_a: float
    current_nc_a: float
    directory: Path


@dataclass(frozen=True)
class Reference:
    root: Path
    electrode: Path
    points: dict[float, ReferencePoint]
    no_tsde: Path  # a +0.1 V device run started without the 0 V TSDE (TranSIESTA's FATAL)


@pytest.fixture(scope="session")
def au_chain() -> dict[str, str]:
    """elec.fdf, device.fdf and Au.psf (the installed pseudopotential)."""
    return siesta_case("au_chain")


def _run(program: str, cwd: Path, stdin: str, stdout: str, *args: str) -> int:
    with (cwd / stdin).open("rb") as fin, (cwd / stdout).open("wb") as fout:
        return subprocess.run(
            [program, *args],
            cwd=cwd,
            stdin=fin,
            stdout=fout,
            stderr=subprocess.DEVNULL,
            timeout=120,
            check=False,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        ).returncode


def _device_fdf(text: str, bias: float, restart: bool) -> str:
    out, n = re.subn(r"(?m)^TS\.Voltage .*$", f"TS.Voltage {bias} eV", text)
    assert n == 1, "device.fdf must hold exactly one 'TS.Voltage' line"
    return out + ("DM.UseSaveDM true\n" if restart else "")


# The netCDF-C/HDF5 libraries under sisl are not thread-safe: the two branches run on
# threads, so their TBT.nc reads take turns (two at once crashed the interpreter).
_NETCDF = threading.Lock()


def _point(
    root: Path, files: dict[str, str], bias: float, previous: float | None
) -> ReferencePoint:
    """One device run (from the previous point's TSDE) and its TBtrans, by hand."""
    import sisl

    d = root / f"point{bias:+.3f}"
    d.mkdir()
    (d / "Au.psf").write_text(files["Au.psf"])
    shutil.copy(root / "electrode" / "elec.TSHS", d / "elec.TSHS")
    if previous is not None:
        shutil.copy(root / f"point{previous:+.3f}" / "device.TSDE", d / "device.TSDE")
    (d / "device.fdf").write_text(_device_fdf(files["device.fdf"], bias, previous is not None))
    assert _run("siesta", d, "device.fdf", "device.out") == 0, f"reference {bias} V failed"
    assert _run("tbtrans", d, "device.fdf", "tbtrans.out") == 0
    found = _CURRENT.search((d / "tbtrans.out").read_text(errors="replace"))
    assert found is not None, f"no current in the reference TBtrans output at {bias} V"
    with _NETCDF:
        current_nc = float(sisl.get_sile(str(d / "device.TBT.nc")).current("Left", "Right"))
    return ReferencePoint(
        bias_v=float(found.group(1)),
        current_stdout_a=float(found.group(2)),
        current_nc_a=current_nc,
        directory=d,
    )


def _branch(root: Path, files: dict[str, str], biases: list[float]) -> list[ReferencePoint]:
    out: list[ReferencePoint] = []
    previous = 0.0
    for bias in biases:
        out.append(_point(root, files, bias, previous))
        previous = bias
    return out


def _no_tsde(root: Path, files: dict[str, str]) -> Path:
    bad = root / "no-tsde"
    bad.mkdir()
    (bad / "Au.psf").write_text(files["Au.psf"])
    shutil.copy(root / "electrode" / "elec.TSHS", bad / "elec.TSHS")
    (bad / "device.fdf").write_text(_device_fdf(files["device.fdf"], 0.1, False))
    assert _run("siesta", bad, "device.fdf", "device.out") != 0
    return bad


@pytest.fixture(scope="session")
def reference(au_chain: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """Electrode, 0 V, then both branches at once (two cores), each point + TBtrans."""
    root = tmp_path_factory.mktemp("au-chain-reference")
    elec = root / "electrode"
    elec.mkdir()
    for name in ("elec.fdf", "Au.psf"):
        (elec / name).write_text(au_chain[name])
    assert _run("siesta", elec, "elec.fdf", "elec.out", "--electrode") == 0
    zero = _point(root, au_chain, 0.0, None)
    positive = sorted(b for b in BIASES if b > 0)
    negative = sorted((b for b in BIASES if b < 0), reverse=True)
    with ThreadPoolExecutor(2) as pool:
        up = pool.submit(_branch, root, au_chain, positive)
        down = pool.submit(_branch, root, au_chain, negative)
        bad = pool.submit(_no_tsde, root, au_chain)
        points = {p.bias_v: p for p in [zero, *up.result(), *down.result()]}
        no_tsde = bad.result()
    return Reference(root, elec, {round(v, 6) + 0.0: p for v, p in points.items()}, no_tsde)
