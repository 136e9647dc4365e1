"""The example model: pw.x input descriptors, the exported coefficients, the stdlib server.

The server runs in a thread on a loopback port exactly as in its image (same files, same
model.json); the Docker path is covered by tests/integration/ml.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

MODEL_DIR = Path(__file__).resolve().parents[3] / "ml" / "example_model"
sys.path.insert(0, str(MODEL_DIR))

import features  # noqa: E402

H2 = """&control calculation='scf', prefix='h2', pseudo_dir='/usr/share/espresso/pseudo/',
  outdir='./tmp' /
&system ibrav=1, celldm(1)=12.0, nat=2, ntyp=1, ecutwfc=25.0 /
&electrons conv_thr=1.0d-8, mixing_beta=0.7 /
ATOMIC_SPECIES
  H 1.008 H.pz-vbc.UPF
ATOMIC_POSITIONS bohr
  H 0.0 0.0 0.0
  H 1.4 0.0 0.0
K_POINTS gamma
"""

FE_HARD = """&CONTROL
  calculation = 'scf'   ! a comment with a / slash
  pseudo_dir = '/pseudo/dir/'
/
&SYSTEM
  ibrav = 3, celldm(1) = 5.217, nat = 1, ntyp = 1,
  ecutwfc = 25.0, ecutrho = 200.0,
  occupations = 'smearing', smearing = 'mv', degauss = 0.002,
  nspin = 2, starting_magnetization(1) = 0.6
/
&ELECTRONS
  conv_thr = 1.D-10, mixing_beta = 0.9, electron_maxstep = 4, mixing_mode = 'local-TF'
/
ATOMIC_SPECIES
 Fe 55.845 Fe.pz-nd-rrkjus.UPF
ATOMIC_POSITIONS {alat}
 Fe 0.00 0.00 0.00
K_POINTS {automatic}
 6 6 6 1 1 1
"""


def _load_server() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_model_server", MODEL_DIR / "server.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


server = _load_server()


def test_describe_reads_namelists_and_cards() -> None:
    d = features.describe(H2)
    assert d == {
        "n_atoms": 2,
        "n_species": 1,
        "n_kpoints": 1,
        "ecutwfc": 25.0,
        "dual": 4.0,
        "spin_polarized": 0,
        "smearing": 0,
        "degauss": 0.0,
        "mixing_beta": 0.7,
        "mixing_mode": "plain",
        "electron_maxstep": 100,  # pw.x's default
        "conv_thr": 1e-8,
        "volume_per_atom": pytest.approx(12.0**3 / 2),
        "transition_metal": 0,
    }
    fe = features.describe(FE_HARD)
    assert fe["n_kpoints"] == 216
    assert fe["dual"] == 8.0
    assert (fe["spin_polarized"], fe["smearing"], fe["transition_metal"]) == (1, 1, 1)
    assert fe["degauss"] == 0.002
    assert fe["conv_thr"] == 1e-10  # Fortran 1.D-10
    assert fe["mixing_mode"] == "local-tf"
    assert fe["electron_maxstep"] == 4
    assert fe["volume_per_atom"] == pytest.approx(5.217**3 / 2)


def test_describe_cell_parameters_and_k_point_lists() -> None:
    text = (
        "&system ibrav=0, nat=2, ntyp=1, ecutwfc=30 /\n&electrons /\n"
        "CELL_PARAMETERS angstrom\n 2 0 0\n 0 2 0\n 0 0 2\n"
        "ATOMIC_SPECIES\n Si 28 Si.UPF\nK_POINTS tpiba\n 3\n 0 0 0 1\n 0.5 0 0 1\n 0.5 0.5 0 1\n"
    )
    d = features.describe(text)
    assert d["n_kpoints"] == 3
    assert d["volume_per_atom"] == pytest.approx(8 / 0.529177210903**3 / 2)


@pytest.mark.parametrize(
    "text",
    ["", "just text", "&control /\n", "&system nat=0, ecutwfc=10 /", "&system nat=1 /"],
)
def test_describe_refuses_what_is_not_a_pw_input(text: str) -> None:
    with pytest.raises(features.InputError):
        features.describe(text)


def test_vectorize_fills_pw_defaults_and_checks_numbers() -> None:
    v = features.vectorize({"n_atoms": 2, "ecutwfc": 25})
    assert len(v) == len(features.FEATURES)
    named = dict(zip(features.FEATURES, v, strict=True))
    assert named["mixing_beta"] == 0.7
    assert named["log_maxstep"] == pytest.approx(math.log(100))
    assert named["neg_log10_conv_thr"] == pytest.approx(6)
    with pytest.raises(features.InputError, match="ecutwfc"):
        features.vectorize({"n_atoms": 2})
    with pytest.raises(features.InputError, match="mixing_beta"):
        features.vectorize({"n_atoms": 2, "ecutwfc": 25, "mixing_beta": "high"})
    with pytest.raises(features.InputError):
        features.vectorize({"n_atoms": 2, "ecutwfc": float("nan")})


def test_exported_model_is_complete_and_documented() -> None:
    doc = json.loads((MODEL_DIR / "model.json").read_text())
    assert doc["features"] == list(features.FEATURES)
    for head in ("classifier", "iterations"):
        part = doc[head]
        assert len(part["coef"]) == len(part["mean"]) == len(part["scale"]) == len(doc["features"])
        assert all(s > 0 for s in part["scale"])
    metrics = doc["metrics"]
    split = metrics["holdout_split"]
    # the committed model must beat always answering the majority class
    assert split["accuracy"] > split["majority_baseline_accuracy"]
    assert split["roc_auc"] > 0.8
    assert metrics["leave_one_system_out"]["per_system"]


def test_predictions_follow_the_physics() -> None:
    model = server.Model(json.loads((MODEL_DIR / "model.json").read_text()))
    easy = model.predict(features.describe(H2))
    hard = model.predict(features.describe(FE_HARD))
    assert easy["converged"] is True
    assert easy["risk"] == "low"
    assert hard["converged"] is False
    assert hard["p_not_converged"] > 0.6
    # more SCF steps allowed: less risk, all else equal
    base = features.describe(FE_HARD)
    risks = [
        model.predict({**base, "electron_maxstep": n})["p_not_converged"] for n in (4, 10, 30, 100)
    ]
    assert risks == sorted(risks, reverse=True)
    assert easy["scf_iterations"] > 1


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    server.Handler.model = server.Model(json.loads((MODEL_DIR / "model.json").read_text()))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), server.Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _post(url: str, **kw: Any) -> httpx.Response:
    return httpx.post(url + "/invocations", timeout=10, **kw)


def test_server_contract(served: str) -> None:
    r = httpx.get(served + "/ping", timeout=5)
    assert r.status_code == 200
    assert r.json()["model"] == "qe-scf-convergence"
    r = _post(served, json={"instances": [{"pw_input": H2}, {"n_atoms": 8, "ecutwfc": 15}]})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    preds = r.json()["predictions"]
    assert len(preds) == 2
    assert set(preds[0]) == {
        "p_not_converged",
        "converged",
        "risk",
        "scf_iterations",
        "descriptors",
    }
    r = _post(served, content=FE_HARD.encode(), headers={"Content-Type": "text/plain"})
    assert r.status_code == 200
    assert r.json()["predictions"][0]["converged"] is False
    # one bare instance is accepted too
    assert _post(served, json={"pw_input": H2}).json()["predictions"][0]["converged"] is True
    card = httpx.get(served + "/model", timeout=5).json()
    assert "classifier" not in card
    assert card["metrics"]["holdout_split"]["accuracy"] > 0


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        ({"content": b"{", "headers": {"Content-Type": "application/json"}}, 400, "invalid JSON"),
        ({"json": {"instances": []}}, 400, "between 1 and"),
        ({"json": {"instances": [42]}}, 400, "each instance"),
        ({"json": {"instances": [{"pw_input": "nothing"}]}}, 400, "no &system"),
        ({"content": b"x", "headers": {"Content-Type": "image/png"}}, 415, "unsupported"),
    ],
)
def test_server_rejects_bad_requests(
    served: str, kwargs: dict[str, Any], status: int, error: str
) -> None:
    r = _post(served, **kwargs)
    assert r.status_code == status
    assert error in r.json()["error"]
    assert httpx.get(served + "/nope", timeout=5).status_code == 404
