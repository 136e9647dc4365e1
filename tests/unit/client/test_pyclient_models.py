"""The client's models mirror the API's schemas field for field, and the client imports
nothing of the server (the slim ``hpcgate-agent`` installs use it without FastAPI or SQLAlchemy)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import BaseModel

from hpcgate.api.routes.analyses import AnalysisInfo as ApiAnalysisInfo
from hpcgate.api.routes.inputs import StoredInput as ApiStoredInput
from hpcgate.api.schemas import auth, calculations, clusters, logs, outputs, users
from hpcgate.client import models

PAIRS: list[tuple[type[BaseModel], type[BaseModel]]] = [
    (models.User, users.UserOut),
    (models.Token, auth.TokenResponse),
    (models.Queue, clusters.QueueOut),
    (models.Cluster, clusters.ClusterOut),
    (models.AnalysisInfo, ApiAnalysisInfo),
    (models.Task, calculations.TaskOut),
    (models.AttemptChange, calculations.AttemptChange),
    (models.Attempt, calculations.AttemptOut),
    (models.Step, calculations.StepOut),
    (models.StepDetail, calculations.StepDetail),
    (models.CalculationSummary, calculations.CalculationSummary),
    (models.CalculationDetail, calculations.CalculationDetail),
    (models.CalculationPage, calculations.CalculationPage),
    (models.ExtractedResult, calculations.ResultOut),
    (models.AnalysisResult, calculations.AnalysisResultOut),
    (models.Results, calculations.ResultsOut),
    (models.LogLine, logs.LogLineOut),
    (models.LogPage, logs.LogPage),
    (models.PreviewStep, calculations.PreviewStep),
    (models.Preview, calculations.PreviewOut),
    (models.StoredInput, ApiStoredInput),
    (models.CalculationCreate, calculations.CalculationCreate),
    (models.OutputEntry, outputs.OutputEntryOut),
    (models.OutputListing, outputs.OutputListing),
]


@pytest.mark.parametrize(("mine", "theirs"), PAIRS, ids=[p[0].__name__ for p in PAIRS])
def test_fields_match_the_api(mine: type[BaseModel], theirs: type[BaseModel]) -> None:
    assert set(mine.model_fields) == set(theirs.model_fields)
    # a field the API always sends may be required here; one it may omit must not be
    for name, field in mine.model_fields.items():
        if field.is_required():
            assert theirs.model_fields[name].is_required() or mine is models.CalculationCreate


def test_an_api_answer_parses_into_the_client_model() -> None:
    sent = calculations.CalculationPage(items=[], total=0, limit=50, offset=0)
    got = models.CalculationPage.model_validate_json(sent.model_dump_json())
    assert got.total == 0


def test_the_client_imports_nothing_of_the_server() -> None:
    code = (
        "import sys, hpcgate.client, hpcgate.cli_client\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'sqlalchemy', 'psycopg', 'uvicorn', 'starlette') "
        "or m.startswith(('hpcgate.api', 'hpcgate.db', 'hpcgate.services')))\n"
        "print(bad)\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
