"""The typed Python client for the hpcgate API (``docs/client.md``).

    from hpcgate.client import Client
    with Client() as hg:                      # HPCGATE_URL/HPCGATE_TOKEN or `hpcgate login`
        calc = hg.submit("h2o/")              # a directory or a YAML spec
        done = hg.wait(calc.id)
        energies = hg.results(calc.id)

``AsyncClient`` has the same methods as coroutines. Errors: ``ApiError`` (the API refused,
with its message and status), ``NotLoggedIn``, ``Unreachable``; all are ``ClientError``.
"""

from hpcgate.client.aio import AsyncClient
from hpcgate.client.credentials import CredentialStore, Login
from hpcgate.client.errors import ApiError, ClientError, NotLoggedIn, Unreachable
from hpcgate.client.models import (
    FINAL_STATES,
    AnalysisResult,
    CalculationCreate,
    CalculationDetail,
    CalculationSummary,
    Cluster,
    ExtractedResult,
    LogLine,
    Results,
    Step,
    User,
)
from hpcgate.client.spec import Submission, load_submission
from hpcgate.client.sync import Client

__all__ = [
    "FINAL_STATES",
    "AnalysisResult",
    "ApiError",
    "AsyncClient",
    "CalculationCreate",
    "CalculationDetail",
    "CalculationSummary",
    "Client",
    "ClientError",
    "Cluster",
    "CredentialStore",
    "ExtractedResult",
    "LogLine",
    "Login",
    "NotLoggedIn",
    "Results",
    "Step",
    "Submission",
    "Unreachable",
    "User",
    "load_submission",
]
