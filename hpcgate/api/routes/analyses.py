"""The analyses catalogue (one dependency graph for API and portal), reports and molecules."""

from __future__ import annotations

import io
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from hpcgate.api.deps import CurrentUser, SessionDep
from hpcgate.db.models import Molecule
from hpcgate.services import calculations as calc_svc
from hpcgate.services import molecules as mol_svc
from hpcgate.services.reports import report_document

analyses_router = APIRouter(prefix="/analyses", tags=["analyses"])
reports_router = APIRouter(prefix="/calculations", tags=["reports"])
molecules_router = APIRouter(prefix="/molecules", tags=["molecules"])


class AnalysisInfo(BaseModel):
    name: str
    title: str
    codes: list[str]
    requires: list[str]
    description: str = ""


@analyses_router.get("", response_model=list[AnalysisInfo])
def list_analyses(user: CurrentUser) -> list[AnalysisInfo]:
    """Every analysis with the ones it requires: the portal enforces the same graph."""
    from analyses.registry import default_registry

    out = []
    for item in default_registry().catalogue():
        out.append(
            AnalysisInfo(
                name=str(item["name"]),
                title=str(item.get("title", item["name"])),
                codes=list(item.get("codes", [])),
                requires=list(item.get("requires", [])),
                description=str(item.get("description", "") or ""),
            )
        )
    return out


_MEDIA = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "json": "application/json",
    "csv": "application/zip",
}


@reports_router.get("/{calc_id}/report.{fmt}")
def download_report(
    calc_id: int, fmt: Literal["html", "pdf", "json", "csv"], user: CurrentUser, session: SessionDep
) -> Response:
    """The calculation's report: graphs and tables of its analyses, inputs, code version and
    resources. ``csv`` is a zip with one CSV per table."""
    from analyses.report import write_report

    calc = calc_svc.get_calculation(session, calc_id)
    doc = report_document(session, calc)
    with tempfile.TemporaryDirectory(prefix="hpcgate-report-") as tmp:
        written = write_report(doc, Path(tmp), formats=[fmt])
        if fmt == "csv":
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in written.get("csv", []):
                    zf.write(path, arcname=path.name)
            body = buf.getvalue()
        else:
            body = written[fmt][0].read_bytes()
    filename = f"calculation-{calc_id}-report.{'zip' if fmt == 'csv' else fmt}"
    return Response(
        body,
        media_type=_MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


class MoleculeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    format: Literal["xyz", "fdf"]
    text: str = Field(min_length=1, max_length=4 << 20)


class MoleculeOut(BaseModel):
    id: int
    name: str
    formula: str
    atoms: list[dict[str, Any]]
    format: str
    created_at: datetime
    calculation_count: int = 0


def _out(m: Molecule, count: int = 0) -> MoleculeOut:
    geometry = m.geometry or {}
    return MoleculeOut(
        id=m.id,
        name=m.name,
        formula=m.formula,
        atoms=list(geometry.get("atoms", [])),
        format=str(geometry.get("format", "")),
        created_at=m.created_at,
        calculation_count=count,
    )


@molecules_router.post("", response_model=MoleculeOut, status_code=201)
def create_molecule(body: MoleculeCreate, user: CurrentUser, session: SessionDep) -> MoleculeOut:
    return _out(
        mol_svc.create_molecule(
            session, name=body.name, fmt=body.format, text=body.text, owner_id=user.id
        )
    )


@molecules_router.get("", response_model=list[MoleculeOut])
def list_molecules(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[MoleculeOut]:
    rows = mol_svc.list_with_counts(session, limit=limit, offset=offset)
    return [_out(m, count) for m, count in rows]


@molecules_router.get("/{molecule_id}", response_model=MoleculeOut)
def get_molecule(molecule_id: int, user: CurrentUser, session: SessionDep) -> MoleculeOut:
    m = mol_svc.get_molecule(session, molecule_id)
    return _out(m, mol_svc.calculation_count(session, m.id))


@molecules_router.get("/{molecule_id}/compare")
def compare_molecule(
    molecule_id: int,
    user: CurrentUser,
    session: SessionDep,
    analysis: Annotated[str, Query(min_length=1, max_length=100)],
) -> list[dict[str, Any]]:
    """One analysis across the molecule's calculations (e.g. I-V curves side by side)."""
    return mol_svc.compare(session, molecule_id, analysis)
