"""The cluster side's command line: ``agent``, and the in-job ``validate`` and ``extract``.

A login node installs only this side (the ``hpcgate-agent`` distribution, packaging/agent/):
no web server, no database driver. So this module, and everything it imports, stays free of
the server's dependencies; ``tests/unit/test_agent_slim_imports.py`` keeps it so. The full
``hpcgate`` command mounts the same ``agent`` command.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

if TYPE_CHECKING:
    from hpcgate.agent.config import AgentConfig

app = typer.Typer(
    name="hpcgate",
    help="hpcgate on a cluster: the agent of a login node and the in-job checks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class AgentConfigError(Exception):
    """An agent configuration that cannot be used: one line for the operator, exit 2."""


def agent(
    config: Annotated[Path, typer.Option("--config", "-c", help="Agent configuration (YAML).")],
    once: Annotated[
        bool, typer.Option(help="Run each tick once (pull, harvest, heartbeat, cleanup) and exit.")
    ] = False,
) -> None:
    """Run the cluster agent on a login node: pull approved work with the cluster's API key,
    submit it with the native scheduler, report states, heartbeats and results.
    """
    from hpcgate.agent.log_buffer import LogBuffer
    from hpcgate.agent.loop import Agent
    from hpcgate.logging import configure_logging
    from hpcgate.metrics.exporter import serve_metrics

    configure_logging(json_output=True)
    runner = Agent(_load(config))
    serve_metrics(runner.config.metrics_host, runner.config.metrics_port)
    # The agent's log lines reach the portal's log feed (buffered, shipped with heartbeats).
    runner.log_buffer = LogBuffer(runner.config.state_dir)
    logging.getLogger().addHandler(runner.log_buffer)
    if once:
        for tick in (runner.pull_and_submit, runner.harvest, runner.heartbeat, runner.cleanup):
            tick()
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    runner.run(stop)


def _load(config: Path) -> AgentConfig:
    from hpcgate.agent.config import load_config

    try:
        return load_config(config)
    except FileNotFoundError:
        raise AgentConfigError(f"agent configuration {config} not found") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise AgentConfigError(
            f"agent configuration {config}: {where}: {first.get('msg')}"
        ) from None
    except (ValueError, OSError) as exc:
        raise AgentConfigError(f"agent configuration {config}: {exc}") from None


def _register() -> None:
    from hpcgate.cli_extract import extract
    from hpcgate.cli_validate import validate

    app.command(name="agent")(agent)
    app.command(name="validate")(validate)
    app.command(name="extract")(extract)


_register()


def main() -> None:
    """Entry point of the ``hpcgate-agent`` distribution's ``hpcgate`` command."""
    try:
        app(standalone_mode=True)
    except AgentConfigError as exc:
        typer.echo(f"hpcgate: error: {exc}", err=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        typer.echo("hpcgate: error: interrupted", err=True)
        raise SystemExit(130) from None
