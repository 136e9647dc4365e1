"""Molecules (register, 3D structure, calculations, comparison) and report downloads."""

from __future__ import annotations

import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import H2O_FILES, H2O_MAIN, Stack, login, page_errors, shot, wait_until

pytestmark = pytest.mark.e2e

WATER_XYZ = """3
water (e2e)
O   0.000000   0.000000   0.119262
H   0.000000   0.763239  -0.477047
H   0.000000  -0.763239  -0.477047
"""


def _siesta_calculation(stack: Stack, molecule_id: int, name: str) -> dict[str, Any]:
    """A single real SIESTA run of our small water input, linked to the molecule."""
    inputs = {n: (stack.siesta_dir / n).read_text(encoding="utf-8") for n in H2O_FILES}
    return {
        "name": name,
        "description": "molecule comparison (e2e)",
        "molecule_id": molecule_id,
        "cluster_id": stack.clusters["local-e2e"],
        "logical_queue": "default",
        "code": "siesta",
        "configuration": {"kind": "single", "main_input": H2O_MAIN, "inputs": inputs},
        "analyses": ["scf_convergence", "energy"],
    }


def _structure_shown(page: Any) -> str:
    """'3d' when 3Dmol drew its WebGL canvas, 'fallback' when the page said WebGL is missing."""
    page.wait_for_selector(
        "[data-testid=structure-3d][data-status=ready] canvas, [data-testid=structure-fallback]",
        timeout=60_000,
    )
    if page.locator("[data-testid=structure-fallback]").count():
        return "fallback"
    return "3d"


def test_molecule_register_view_compare_and_report(page: Any, stack: Stack) -> None:
    name = f"water-{uuid.uuid4().hex[:6]}"
    login(page, stack, "user")
    page.click("[data-nav=Molecules]")
    page.wait_for_selector("[data-testid=register-molecule]")

    # Bad input: the API's 4xx message is shown as it is.
    page.fill("input[name=molecule_name]", name)
    page.select_option("select[name=molecule_format]", "xyz")
    page.fill("textarea[name=molecule_text]", "5\nnot enough atoms\nO 0 0 0\n")
    page.click("[data-testid=register]")
    error = page.wait_for_selector("[data-testid=register-molecule] [role=alert]")
    assert "xyz: 5 atoms announced, 1 lines found" in error.inner_text()

    # A good one, uploaded as a file: the format and the geometry come from it.
    page.fill("textarea[name=molecule_text]", "")
    page.set_input_files(
        "input[name=molecule_file]",
        files=[{"name": "water.xyz", "mimeType": "text/plain", "buffer": WATER_XYZ.encode()}],
    )
    # The portal reads the file asynchronously (File.text()): wait for the textarea to fill.
    page.wait_for_function(
        "() => document.querySelector('textarea[name=molecule_text]').value.includes('0.763239')"
    )
    page.click("[data-testid=register]")
    page.wait_for_selector("[data-testid=page-molecule]")
    molecule_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    assert "H2O" in page.inner_text("[data-testid=page-molecule] header")

    shown = _structure_shown(page)
    atoms = page.inner_text("[data-testid=atoms]")
    assert "Atoms (3)" in atoms
    assert "0.7632" in atoms
    assert "-0.4770" in atoms
    page.wait_for_selector("[data-testid=molecule-calculations] >> text=No calculation")
    shot(page, "20-molecule-registered")

    # Two calculations of it, created through the API, run by the worker's local executor.
    with stack.api("user") as api:
        ids = []
        for label in ("a", "b"):
            body = _siesta_calculation(stack, molecule_id, f"{name} {label}")
            r = api.post("/calculations", json=body)
            assert r.status_code == 201, r.text
            assert r.json()["molecule_id"] == molecule_id
            ids.append(r.json()["id"])

        def all_done() -> bool:
            states = [api.get(f"/calculations/{i}").json()["state"] for i in ids]
            assert "failed" not in states, states
            return all(s == "completed" for s in states)

        wait_until(all_done, timeout=300, every=1)
        listed = api.get("/molecules").json()
        assert next(m for m in listed if m["id"] == molecule_id)["calculation_count"] == 2
        compared = api.get(
            f"/molecules/{molecule_id}/compare", params={"analysis": "energy"}
        ).json()

    # The list shows formula and counts.
    page.click("[data-nav=Molecules]")
    row = page.wait_for_selector(f"[data-testid=molecule-list] tr[data-molecule='{name}']")
    assert "H2O" in row.inner_text()
    # The list may first show what the portal loaded before the calculations were created
    # through the API (it was fresh, so not refetched on the way back); it refreshes itself
    # while open: the count must arrive.
    page.wait_for_function(
        "id => document.querySelector(`[data-testid=calc-count-${id}]`)?.textContent === '2'",
        arg=molecule_id,
        timeout=30_000,
    )
    shot(page, "21-molecules")

    # The molecule's page: 3D view, its calculations (links), the comparison.
    page.click(f"[data-testid=molecule-list] a:has-text('{name}')")
    page.wait_for_selector("[data-testid=page-molecule]")
    assert _structure_shown(page) == shown
    for calc_id in ids:
        page.wait_for_selector(
            f"[data-testid=molecule-calculations] a[href='/calculations/{calc_id}']"
        )
    page.select_option("select[aria-label='compare analysis']", "energy")
    if compared:
        table = page.wait_for_selector("[data-testid=comparison-table]")
        assert table.inner_text().count(name) == len(compared)
        if any((c.get("output") or {}).get("series") for c in compared):
            page.wait_for_selector("[data-testid=comparison-charts] canvas")
    else:  # the server computed no central result for these runs
        page.wait_for_selector("[data-testid=comparison] >> text=has a result for energy")
    shot(page, "22-molecule-compare-energy")
    # A convergence history per calculation: all of them on one chart.
    with stack.api("user") as api:
        scf = api.get(
            f"/molecules/{molecule_id}/compare", params={"analysis": "scf_convergence"}
        ).json()
    page.select_option("select[aria-label='compare analysis']", "scf_convergence")
    if any((c.get("output") or {}).get("series") for c in scf):
        page.wait_for_selector("[data-testid=comparison-charts] canvas")
        page.wait_for_selector(f"[data-testid=comparison-table] >> text=#{ids[1]} {name} b")
    page.locator("[data-testid=structure]").scroll_into_view_if_needed()
    shot(page, "22-molecule-page")
    shot(page, "23-molecule-structure", full_page=False)

    # Report downloads: fetched with the token, saved from a blob URL.
    page.goto(f"/analyses/{ids[0]}")
    page.wait_for_selector("[data-testid=report-downloads]")
    for fmt in ("html", "pdf", "csv", "json"):
        assert page.locator(f"[data-testid=download-{fmt}]").count() == 1
    with page.expect_download(timeout=90_000) as info:
        page.click("[data-testid=download-pdf]")
    pdf = info.value
    assert pdf.suggested_filename == f"calculation-{ids[0]}-report.pdf"
    assert Path(pdf.path()).read_bytes().startswith(b"%PDF")
    with page.expect_download(timeout=90_000) as info:
        page.click("[data-testid=download-csv]")
    archive = info.value
    assert archive.suggested_filename.endswith(".zip")
    with zipfile.ZipFile(archive.path()) as zf:
        assert all(n.endswith(".csv") for n in zf.namelist())
    shot(page, "24-report-downloads")

    # The same buttons on the calculation's own page.
    page.goto(f"/calculations/{ids[1]}?tab=results")
    page.wait_for_selector("[data-testid=report-downloads] [data-testid=download-html]")
    with page.expect_download(timeout=90_000) as info:
        page.click("[data-testid=download-html]")
    assert b"<html" in Path(info.value.path()).read_bytes()[:2000].lower()
    assert page_errors(page) == []
