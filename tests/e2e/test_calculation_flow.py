"""A researcher creates a SIESTA chain with analyses, watches it run, reads its results."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hpcgate.db.models import Step
from tests.e2e.conftest import H2O_FILES, H2O_MAIN, Stack, login, page_errors, shot
from tests.helpers.siesta_env import final_energy_ev

pytestmark = pytest.mark.e2e


def test_chain_with_analyses_runs_and_reports(page: Any, stack: Stack) -> None:
    login(page, stack, "user")
    page.click("[data-nav=Calculations]")
    page.click("[data-testid=new-calculation]")
    page.wait_for_selector("[data-testid=page-new-calculation]")

    page.fill("input[name=name]", "water chain (e2e)")
    page.fill("textarea[name=description]", "MeshCutoff convergence of a water molecule")
    page.select_option("select[name=code]", "siesta")
    page.select_option("select[name=cluster]", label="local-e2e")
    page.select_option("select[name=queue]", "default")
    page.check("input[name=kind][value=chain]")
    page.fill("input[name=parameter]", "MeshCutoff")
    page.fill("input[name=values]", "40 Ry, 60 Ry")
    # Upload the SIESTA inputs (the main input is picked from the .fdf); the real siesta runs.
    page.set_input_files("input[name=input_files]", [str(stack.siesta_dir / n) for n in H2O_FILES])
    page.wait_for_selector(f"[data-testid=input-files] >> text={H2O_MAIN}")
    assert page.input_value("input[name=main_input]") == H2O_MAIN

    # Dependency enforcement: Energy needs SCF convergence, which is ticked and locked.
    scf = page.locator("input[name=analysis_scf_convergence]")
    assert not scf.is_checked()
    page.check("input[name=analysis_energy]")
    assert scf.is_checked()
    assert scf.is_disabled()
    page.wait_for_selector("[data-testid=analysis-note]:has-text('requires SCF convergence')")
    page.wait_for_selector(
        "[data-testid=required-by-scf_convergence]:has-text('required by energy')"
    )
    # Analyses of other codes are not offered for SIESTA.
    assert page.locator("input[name=analysis_qe_energy]").count() == 0
    page.check("input[name=analysis_eigenvalues]")

    # Preview: the chain's steps and their rendered job scripts, nothing saved.
    page.click("[data-testid=preview]")
    preview = page.wait_for_selector("[data-testid=preview-result]")
    assert "2 step(s)" in preview.inner_text()
    assert "MeshCutoff=60 Ry" in preview.inner_text()
    assert "step 0" in page.inner_text("[data-testid=preview-result] table")
    script0 = page.inner_text("[data-testid=script-0]")
    assert "siesta" in script0
    assert "validate" in script0
    assert "scf_convergence,eigenvalues,energy" in script0
    shot(page, "02-calculation-create")

    page.click("[data-testid=create]")
    page.wait_for_selector("[data-testid=page-calculation]")
    calc_id = int(re.search(r"/calculations/(\d+)", page.url).group(1))  # type: ignore[union-attr]

    # Watch it run: the page polls; both steps get scheduler ids and the chain completes.
    page.wait_for_selector("h1 [data-state=completed]", timeout=150_000)
    for index in (0, 1):
        job_id = page.inner_text(f"[data-testid=job-id-{index}]")
        assert re.match(r"L\d+", job_id), job_id
    timeline = page.inner_text("[data-testid=timeline]")
    assert "created" in timeline
    assert "step 1 (MeshCutoff=60 Ry) ended" in timeline
    page.click("[data-testid=step-toggle-1]")
    page.wait_for_selector("[data-testid=step-cpu-1] canvas")
    page.wait_for_selector("[data-testid=step-detail-1] >> text=60 Ry")
    shot(page, "03-calculation-detail")

    # Results: the convergence verdict and the analyses' data, per step.
    page.click("[role=tab]:has-text('results')")
    page.wait_for_selector("[data-testid=report]")
    page.wait_for_selector("[data-testid=results-validation]")
    validation = page.inner_text("[data-testid=results-validation]")
    assert "converged" in validation
    assert "MeshCutoff=40 Ry" in validation
    # The energies the portal shows are those of the real runs, read here independently
    # (sisl on each step's own SIESTA output); the cutoff changes them.
    energies = _step_energies(stack, calc_id)
    assert len(energies) == 2
    assert abs(energies[0] - energies[1]) > 1e-3, energies
    # Central analyses (graphs, tables) when the server computed them; the per-step
    # extracted data is there in any case.
    if page.locator("[data-testid=analysis-energy]").count():
        _shows_all(page.inner_text("[data-testid=analysis-energy]"), energies)
        page.wait_for_selector("[data-testid=analysis-scf_convergence] canvas")
    page.select_option("select[aria-label='result kind']", "analysis:energy")
    _shows_all(page.inner_text("[data-testid=results-analysis-energy]"), energies)
    page.select_option("select[aria-label='result kind']", "validation")
    shot(page, "04-calculation-results")

    page.click("[role=tab]:has-text('configuration')")
    page.wait_for_selector("[data-testid=configuration]")
    page.click(f"button:has-text('{H2O_MAIN}')")
    page.wait_for_selector("pre.script >> text=SystemLabel")

    page.click("[role=tab]:has-text('logs')")
    page.wait_for_selector(f"[data-testid=log-lines] >> text=calculation {calc_id}")

    # The Analyses section shows the same report.
    page.click("[data-nav=Analyses]")
    page.wait_for_selector("[data-testid=page-analyses]")
    page.wait_for_selector("[data-testid=catalogue] >> text=Energy")
    shot(page, "05-analyses")
    page.click("[data-testid=completed-calculations] a:has-text('water chain (e2e)')")
    page.wait_for_selector("[data-testid=report]")
    page.wait_for_selector("[data-testid=report-downloads]")
    shot(page, "06-analyses-report")

    # The list finds it by search, with server-side pagination.
    page.click("[data-nav=Calculations]")
    page.fill("input[aria-label=search]", "water chain")
    page.wait_for_selector("[data-testid=calculations-table] a:has-text('water chain (e2e)')")
    page.wait_for_selector("[data-testid=pager] >> text=1 total")
    shot(page, "07-calculations")
    assert page_errors(page) == []


def test_refused_selection_shows_the_missing_requirement(stack: Stack) -> None:
    """The server has the last word: a selection sent without its requirement is refused
    with the names (the JSON editor lets a user send anything)."""
    with stack.api("user") as api:
        r = api.post(
            "/calculations/preview",
            json={
                "name": "x",
                "cluster_id": stack.clusters["local-e2e"],
                "logical_queue": "default",
                "code": "generic",
                "configuration": {"kind": "single", "command": ["true"]},
                "analyses": ["energy"],
            },
        )
    assert r.status_code == 422
    assert r.json()["missing"] == {"scf_convergence": "required by energy"}


def _step_energies(stack: Stack, calc_id: int) -> list[float]:
    """Each step's total energy as sisl reads it from the step's own SIESTA stdout."""
    with stack.factory() as s:
        workdirs = s.scalars(
            select(Step.workdir).where(Step.calculation_id == calc_id).order_by(Step.index)
        ).all()
    return [final_energy_ev(Path(w or "") / "h2o.out") for w in workdirs]


def _shows_all(text: str, energies: list[float]) -> None:
    """Every energy appears in ``text`` (to the 2 decimals a page shows at least)."""
    shown = [float(x) for x in re.findall(r"-?\d+\.\d+", text.replace("\u2212", "-"))]
    for energy in energies:
        assert any(abs(v - energy) < 0.006 for v in shown), (energy, text[:500])
