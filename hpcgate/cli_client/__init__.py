"""The researcher's verbs of the ``hpcgate`` command, over the typed client (``hpcgate.client``).

``login``, ``logout``, ``submit``, ``status``, ``logs``, ``results``, ``download``,
``cancel``, ``clone``. Each talks to the server named by ``HPCGATE_URL`` or the last
``hpcgate login`` (token from ``HPCGATE_TOKEN`` or the stored login, refreshed as needed).
Ids go to standard output alone (``ID=$(hpcgate submit h2o/)``); progress and messages go to
standard error. Errors are one line and a non-zero exit: 2 when the API refused (4xx),
1 otherwise; ``--wait``/``--watch`` exit 1 when the calculation ends other than completed.

One module per group of verbs: ``session`` (login, logout), ``calculations`` (submit,
status, cancel, clone), ``log_lines`` (logs), ``downloads`` (results, download); ``common``
holds the error handling they share, ``views`` the tables and live views.
"""

from __future__ import annotations

import typer

from hpcgate.cli_client.calculations import cancel, clone, status, submit
from hpcgate.cli_client.downloads import download, results
from hpcgate.cli_client.log_lines import logs
from hpcgate.cli_client.session import login, logout


def register(app: typer.Typer) -> None:
    for fn in (login, logout, submit, status, logs, results, download, cancel, clone):
        app.command(name=fn.__name__)(fn)
