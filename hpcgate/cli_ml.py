"""``hpcgate ml-api``: run the ML-API (model containers on a Docker engine).

Configuration (environment; options override):

* ``HPCGATE_AUTH__SECRET_KEY`` - the main API's JWT key: the ML-API verifies the access
  tokens researchers obtained from the main API (it never issues any);
* ``HPCGATE_MLAPI_MAIN_API_URL`` and ``HPCGATE_MLAPI_API_KEY`` - the main API and the
  ML-API key an admin created there (``POST /ml-api-keys``); or ``--api-key-file``;
* ``HPCGATE_ML__DOCKER_HOST`` (or ``DOCKER_HOST``), ``HPCGATE_ML__PING_INTERVAL_S``,
  ``__PING_TIMEOUT_S``, ``__MAX_RESTARTS`` - the engine and the watchdog;
* every other ``HPCGATE_MLAPI_*`` knob of ``ml/settings.py`` (docs/ml-api.md).

Errors are one line on stderr and exit code 2, never a traceback. The lead mounts it with
``app.command(name="ml-api")(ml_api)``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

__all__ = ["ml_api"]

log = logging.getLogger("hpcgate.cli_ml")


def _fail(message: str) -> NoReturn:
    typer.echo(f"hpcgate: error: {message}", err=True)
    raise typer.Exit(2)


def ml_api(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (default 8001).")] = None,
    main_api_url: Annotated[
        str | None, typer.Option(help="The main API (default http://127.0.0.1:8000).")
    ] = None,
    api_key_file: Annotated[
        Path | None,
        typer.Option(help="File holding the ML-API key (instead of HPCGATE_MLAPI_API_KEY)."),
    ] = None,
    docker_host: Annotated[
        str | None, typer.Option(help="Docker engine, e.g. unix:///run/docker.sock.")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="Label namespace, when several ML-APIs share an engine.")
    ] = None,
) -> None:
    """Run the ML-API: register, run, watch and invoke models packaged as containers."""
    import uvicorn
    from pydantic import ValidationError

    from hpcgate.logging import configure_logging
    from hpcgate.settings import Settings, check_bind
    from ml.api import create_ml_app
    from ml.settings import MlApiConfig

    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "host": host,
            "port": port,
            "main_api_url": main_api_url,
            "docker_host": docker_host,
            "namespace": namespace,
        }.items()
        if v is not None
    }
    if api_key_file is not None:
        try:
            overrides["api_key"] = api_key_file.read_text().strip()
        except OSError as exc:
            _fail(f"cannot read the API key file {api_key_file}: {exc.strerror}")
    try:
        settings = Settings()
        config = MlApiConfig(**overrides)
        check_bind(settings, config.host)  # the built-in secret only on loopback in dev
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        _fail(f"configuration error: {where + ': ' if where else ''}{msg}")
    except ValueError as exc:
        _fail(f"configuration error: {exc}")
    if config.api_key is None:
        log.warning("no ML-API key (HPCGATE_MLAPI_API_KEY): states are not reported")
    configure_logging(json_output=settings.env != "dev")
    app = create_ml_app(settings, config)
    uvicorn.run(app, host=config.host, port=config.port, log_config=None)
