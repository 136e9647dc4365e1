"""End to end on the two-bias Au junction: extract per step, compute the I-V curve, render
the report (HTML, PDF, CSV, JSON) and check the PDF page by page."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from analyses.base import ExtractContext
from analyses.pipeline import compute_all, extract_run
from analyses.report import write_report
from tests.helpers.analyses_env import case, grep_floats
from tests.helpers.ci import require_module

SELECTION = ["scf_convergence", "energy", "forces", "transmission", "current", "iv_curve"]
CURRENT_RE = r"Left -> Right, V \[V\] / I \[A\]:\s*(\S+)\s*V\s*/\s*(\S+)\s*A"


def _pdf_pages_text(pdf: Path) -> list[str]:
    if shutil.which("pdftotext") and shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
        pages = int(re.search(r"^Pages:\s+(\d+)", info.stdout, re.M).group(1))
        return [
            subprocess.run(
                ["pdftotext", "-layout", "-f", str(p), "-l", str(p), str(pdf), "-"],
                capture_output=True, text=True, check=True,
            ).stdout
            for p in range(1, pages + 1)
        ]  # fmt: skip
    pypdf = require_module(
        "pypdf", install_hint="needs pdftotext (scripts/services/tools.sh) or pypdf"
    )
    return [page.extract_text() for page in pypdf.PdfReader(str(pdf)).pages]


def _pdf_images_per_page(pdf: Path, n_pages: int) -> list[int]:
    counts = [0] * n_pages
    if shutil.which("pdfimages"):
        listing = subprocess.run(
            ["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True
        ).stdout
        for line in listing.splitlines()[2:]:
            parts = line.split()
            if len(parts) > 2 and parts[2] == "image":
                counts[int(parts[0]) - 1] += 1
        return counts
    pypdf = require_module(
        "pypdf", install_hint="needs pdfimages (scripts/services/tools.sh) or pypdf"
    )
    return [len(page.images) for page in pypdf.PdfReader(str(pdf)).pages]


@pytest.fixture(scope="module")
def iv_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.helpers.fixtures_path import require_siesta_fixtures

    root = case(require_siesta_fixtures(), "ts_au_100_bias_siesta41")
    steps = []
    # Steps listed high bias first on purpose: the curve must be ordered by bias.
    for index, (folder, bias) in enumerate([("0.25V", 0.25), ("0.00V", 0.0)]):
        ctx = ExtractContext(code="siesta", variant={"TS.Voltage": bias}, step_index=index)
        doc = extract_run(root / folder, ctx, SELECTION)
        assert doc["errors"] == {}
        steps.append({"index": index, "label": f"{bias:.2f} V", "variant": {"TS.Voltage": bias},
                      "state": "validated", "job_id": str(100 + index), "data": doc})  # fmt: skip
    analyses = compute_all(SELECTION, steps, code="siesta")
    report_doc = {
        "calculation": {"id": "calc-7", "name": "Au(100) junction I-V", "code": "siesta",
                        "code_version": "4.1-b4", "kind": "chain", "owner": "ada"},
        "resources": {"nodes": 1, "cores": 4, "elapsed_s": 1800.0, "cpu_hours": 2.0},
        "inputs": {"parameters": {"TS.Voltage": [0.0, 0.25]},
                   "files": {"au_100.fdf": (root / "0.25V" / "au_100.fdf").read_text()}},
        "steps": [{k: v for k, v in s.items() if k != "data"} for s in steps],
        "analyses": analyses,
    }  # fmt: skip
    out = tmp_path_factory.mktemp("report")
    written = write_report(report_doc, out)
    return {"root": root, "analyses": analyses, "written": written, "out": out}


def test_iv_curve_has_one_point_per_step_ordered_by_bias(iv_report: dict[str, Any]) -> None:
    root = iv_report["root"]
    expected = sorted(
        tuple(grep_floats(root / d / "tbt_au_100.out", CURRENT_RE)[0]) for d in ("0.00V", "0.25V")
    )
    assert expected == [(0.0, 0.0), (0.25, 7.69618e-06)]
    iv = iv_report["analyses"]["iv_curve"]
    rows = iv["tables"][0]["rows"]
    assert [(r[2], r[3]) for r in rows] == expected
    assert [r[1] for r in rows] == ["0.00 V", "0.25 V"]
    assert rows[0][3] == pytest.approx(0.0, abs=1e-15)
    assert rows[1][3] == pytest.approx(7.69618e-06, rel=1e-12)
    series = iv["series"][0]
    assert (series["x"], series["y"]) == ([0.0, 0.25], [0.0, 7.69618e-06])
    assert iv["summary"]["points"] == 2


def test_csv_and_json_exports(iv_report: dict[str, Any]) -> None:
    out: Path = iv_report["out"]
    with open(out / "csv" / "iv_curve__iv_curve.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:4] == ["step", "label", "bias [V]", "current [A]"]
    assert [(float(r[2]), float(r[3])) for r in rows[1:]] == [(0.0, 0.0), (0.25, 7.69618e-06)]
    doc = json.loads((out / "report.json").read_text())
    assert doc["analyses"]["iv_curve"]["summary"]["max_abs_current_A"] == 7.69618e-06


def test_html_is_self_contained(iv_report: dict[str, Any]) -> None:
    html = (iv_report["out"] / "report.html").read_text()
    assert "I-V curve" in html
    assert html.count("data:image/png;base64,") >= 4
    assert not re.search(r'src="(?!data:)', html)  # no external resources
    assert "7.69618e-06" in html


def test_pdf_page_by_page(iv_report: dict[str, Any]) -> None:
    pdf = iv_report["out"] / "report.pdf"
    pages = _pdf_pages_text(pdf)
    images = _pdf_images_per_page(pdf, len(pages))
    assert len(pages) >= 7  # cover + one page per analysis + inputs
    assert "Au(100) junction I-V" in pages[0]
    assert "Resources used" in pages[0]
    assert "0.25 V" in pages[0]  # the steps table
    assert "0.00 V" in pages[0]
    assert images[0] == 0
    headings = {
        "SCF convergence": True,
        "Energy": True,
        "Forces": True,
        "Transmission": True,
        "Current": False,
        "I-V curve": True,
    }  # fmt: skip  (analysis -> has a graph)
    for title, has_graph in headings.items():
        found = [i for i, text in enumerate(pages) if text.lstrip().startswith(title)]
        assert found, f"no page starts with {title!r}"
        page = found[0]
        assert (images[page] > 0) == has_graph, (title, images[page])
    iv_page = next(i for i, t in enumerate(pages) if t.lstrip().startswith("I-V curve"))
    assert "7.69618e-06" in pages[iv_page]
    assert "I-V points (ordered by bias)" in pages[iv_page]
    inputs_page = next(i for i, t in enumerate(pages) if t.lstrip().startswith("Inputs"))
    assert "au_100.fdf" in pages[inputs_page]
    assert "TS.Voltage" in pages[inputs_page]
    assert "more lines" in pages[-1]  # the long fdf is cut, not dumped whole
    assert all(f"Page {n + 1}" in text for n, text in enumerate(pages))
