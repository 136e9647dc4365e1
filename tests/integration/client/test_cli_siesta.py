"""The CLI with the real SIESTA/TBtrans on the local executor, through the live API and a real
``hpcgate worker``.

What it proves: ``submit`` of a SIESTA directory runs SIESTA; ``results`` (JSON and CSV)
carries the energy SIESTA printed (read independently with sisl from the step's output);
``download`` writes the HTML, PDF, JSON and CSV reports; a YAML spec with a ``ladder:``
(``kind: transiesta``) previews and runs a bias ladder whose I-V comes back through
``results``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import yaml

from hpcgate.client import Client, CredentialStore
from tests.helpers.siesta_env import final_energy_ev, siesta_case
from tests.integration.client.conftest import Live, one_line_error

pytestmark = pytest.mark.integration


def _client(live: Live) -> Client:
    return Client(live.base, store=CredentialStore(live.home / "hpcgate" / "credentials.json"))


def test_siesta_results_and_reports(live: Live, tmp_path: Path) -> None:
    folder = tmp_path / "h2o"
    folder.mkdir()
    for name, text in siesta_case("h2o").items():
        (folder / name).write_text(text)
    (folder / "hpcgate.yaml").write_text(yaml.safe_dump({
        "name": "H2O via the CLI",
        "code": "siesta",
        "main_input": "h2o.fdf",
        "analyses": ["scf_convergence", "energy"],
        "resources": {"tasks": 1, "walltime_s": 300},
    }))  # fmt: skip
    res = live.cli("submit", str(folder), "--wait", "--interval", "0.3")
    assert res.exit_code == 0, res.output
    calc_id = int(res.stdout.split()[0])
    with _client(live) as client:
        (step,) = client.calculation(calc_id).steps
    reference = final_energy_ev(Path(step.workdir or "") / "h2o.out")

    as_json = live.cli("results", str(calc_id))
    assert as_json.exit_code == 0, as_json.output
    results = json.loads(as_json.stdout)
    validation = next(r for r in results["extracted"] if r["kind"] == "validation")
    assert validation["data"]["status"] == "converged"
    assert validation["data"]["numbers"]["energy_total_ev"] == pytest.approx(reference, abs=1e-4)
    assert {a["analysis"] for a in results["analyses"]} >= {"energy"}

    out = tmp_path / "results.csv"
    as_csv = live.cli("results", str(calc_id), "--format", "csv", "-o", str(out))
    assert as_csv.exit_code == 0, as_csv.output
    rows = [line.split(",") for line in out.read_text().splitlines()]
    assert rows[0] == ["source", "step_index", "task_index", "kind", "key", "value"]
    energy_rows = [r for r in rows if r[3] == "validation" and r[4] == "numbers.energy_total_ev"]
    assert len(energy_rows) == 1
    assert float(energy_rows[0][5]) == pytest.approx(reference, abs=1e-4)

    reports = tmp_path / "reports"
    reports.mkdir()
    written = {}
    for fmt in ("html", "pdf", "json", "csv"):
        got = live.cli("download", str(calc_id), "--format", fmt, "-o", str(reports))
        assert got.exit_code == 0, got.output
        written[fmt] = Path(got.stdout.strip())
    assert written["pdf"].read_bytes().startswith(b"%PDF")
    assert "H2O via the CLI" in written["html"].read_text()
    assert json.loads(written["json"].read_text())
    with zipfile.ZipFile(written["csv"]) as zf:
        assert all(n.endswith(".csv") for n in zf.namelist())
        assert zf.namelist()
    # an existing report is not overwritten without --force
    again = live.cli("download", str(calc_id), "--format", "pdf", "-o", str(reports))
    one_line_error(again, "exists (use --force")
    assert live.cli("download", str(calc_id), "--format", "pdf", "-o", str(reports),
                    "--force").exit_code == 0  # fmt: skip
    assert sorted(p.name for p in reports.iterdir()) == sorted(p.name for p in written.values())


def test_transiesta_ladder_spec_previews_and_runs(live: Live, tmp_path: Path) -> None:
    files = siesta_case("au_chain")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    spec = tmp_path / "ladder.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "Au chain I-V",
        "code": "siesta",
        "inputs": sorted(files),
        "ladder": {
            "device": "device.fdf",
            "electrodes": {"Left": "elec.fdf", "Right": "elec.fdf"},
            "biases_v": [0.0, 0.1],
        },
        "resources": {"tasks": 1, "walltime_s": 600},
    }))  # fmt: skip
    preview = live.cli("submit", str(spec), "--preview")
    assert preview.exit_code == 0, preview.output
    heads = [ln for ln in preview.stdout.splitlines() if ln.startswith("# step ")]
    labels = [h.split(" ", 3)[3].split(" (after")[0] for h in heads]
    assert labels == [
        "electrode elec.fdf", "device 0 V", "device +0.1 V", "tbtrans 0 V", "tbtrans +0.1 V"
    ]  # fmt: skip
    with _client(live) as client:
        before = client.calculations(limit=200).total

    res = live.cli("submit", str(spec), "--wait", "--interval", "0.5")
    assert res.exit_code == 0, res.output
    calc_id = int(res.stdout.split()[0])
    with _client(live) as client:
        calc = client.calculation(calc_id)
        assert client.calculations(limit=200).total == before + 1  # the preview stored nothing
    assert calc.kind == "transiesta"
    assert [s.ladder["role"] for s in calc.steps if s.ladder] == [
        "electrode", "device", "device", "tbtrans", "tbtrans"
    ]  # fmt: skip
    results = json.loads(live.cli("results", str(calc_id)).stdout)
    iv = next(a for a in results["analyses"] if a["analysis"] == "transiesta_iv")
    assert iv["status"] == "ok"
    points = iv["data"]["data"]["points"]
    assert [p["bias_v"] for p in points] == [0.0, 0.1]
    assert points[1]["current_a"] > 0
    assert points[1]["agree"] is True
