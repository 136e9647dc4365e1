"""``CliAdapter``: the shared skeleton of adapters that drive a batch system's CLI.

Shape (AiiDA/qtoolkit split, PSI/J/OOD argv)::

    JobSpec --render--> script text --runner.write_text--> <workdir>/<name>.sh
                                                            |
    commands.py (pure argv builders) --> _run(argv) --> runner.run --> CommandResult
                                                            |
    parse.py (pure parsers) <-------------------------------+

A subclass (``SlurmAdapter``, ``PbsAdapter``) sets three class attributes and
implements two hooks:

* ``name``: registry name (``"slurm"``).
* ``directives``: which header partial the templates include
  (``_<directives>_directives.j2``); usually equal to ``name``.
* ``permanent_errors`` / ``transient_errors``: regexes matched against a failed
  command's stderr+stdout. ``_run`` raises :class:`CommandFailed` whose
  ``transient`` flag says whether *the cluster* (retry later) or *the request*
  (do not retry) is at fault. Permanent patterns win; unmatched failures are
  permanent unless the return code says the command was killed.
* ``submit_argv(script, spec, after_ok=..., hold=...)`` and
  ``parse_submit(result)``.

Everything that runs a command goes through :meth:`_run`, so logging, timing
and error classification live in one place. Subclasses implement the read side
(``status``, ``accounting``, ``find_by_name``, ``node_metrics``) and ``release``
and ``cancel`` with the same ``_run``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from scheduler_adapters.environment import check_names
from scheduler_adapters.errors import CommandFailed, RunnerError
from scheduler_adapters.rendering import Renderer
from scheduler_adapters.runners.base import Runner
from scheduler_adapters.runners.identity import check_account, sudo_argv
from scheduler_adapters.types import CommandResult, JobId, JobSpec

log = logging.getLogger("scheduler_adapters")

# Failures that mean "the cluster is unhealthy right now", common to most CLIs.
COMMON_TRANSIENT_ERRORS: tuple[re.Pattern[str], ...] = (
    re.compile(r"timed? ?out", re.IGNORECASE),
    re.compile(r"connection (refused|reset|closed)", re.IGNORECASE),
    re.compile(r"temporarily unavailable", re.IGNORECASE),
    re.compile(r"try again", re.IGNORECASE),
)


class CliAdapter:
    """Template class for CLI-driven schedulers; see the module docstring."""

    name: ClassVar[str] = "cli"
    directives: ClassVar[str] = "cli"
    permanent_errors: ClassVar[tuple[re.Pattern[str], ...]] = ()
    transient_errors: ClassVar[tuple[re.Pattern[str], ...]] = COMMON_TRANSIENT_ERRORS

    def __init__(
        self,
        runner: Runner,
        *,
        template_dirs: Sequence[str | Path] = (),
        timeout: float = 60.0,
        run_as: str | None = None,
        pass_environment: Sequence[str] = (),
        **options: Any,
    ) -> None:
        self.runner = runner
        self.renderer = Renderer(self.directives, template_dirs)
        self.timeout = timeout
        # Jobs never run as the identity holding the service's secrets: with ``run_as``,
        # every job command (submit, release, cancel, status, accounting) goes through
        # ``sudo -n -u run_as``; only node metrics (sinfo, pbsnodes) run as ourselves.
        self.run_as = check_account(run_as) if run_as else None
        # Variables of ours a cluster admin lets jobs inherit (options.pass_environment).
        self.pass_environment = check_names(pass_environment)
        self.options: dict[str, Any] = dict(options)
        self.log = log.getChild(self.name)

    # ------------------------------------------------------------ rendering
    def render_extra(self, spec: JobSpec) -> Mapping[str, Any]:
        """Extra template variables a subclass wants to offer (default: none)."""
        return {}

    def render(self, spec: JobSpec) -> str:
        """Pure: the script text for ``spec`` (golden-tested)."""
        return self.renderer.render(spec, self.render_extra(spec))

    def script_path(self, spec: JobSpec) -> PurePosixPath:
        return spec.workdir / f"{spec.name}.sh"

    def write_script(self, spec: JobSpec) -> PurePosixPath:
        """Render and write atomically (runner: tmp + rename), returning the path."""
        path = self.script_path(spec)
        self.runner.write_text(path, self.render(spec), mode=0o755)
        return path

    # ----------------------------------------------------------- submission
    def submit_argv(
        self,
        script: PurePosixPath,
        spec: JobSpec,
        *,
        after_ok: Sequence[JobId],
        hold: bool,
    ) -> list[str]:
        raise NotImplementedError

    def parse_submit(self, result: CommandResult) -> JobId:
        raise NotImplementedError

    def submit(
        self, spec: JobSpec, *, after_ok: Sequence[JobId] = (), hold: bool = False
    ) -> JobId:
        """Write the script, submit it with dependencies/hold as CLI options, return the id."""
        script = self.write_script(spec)
        argv = self.submit_argv(script, spec, after_ok=after_ok, hold=hold)
        job_id = self.parse_submit(self._run(argv, cwd=spec.workdir))
        self.log.info("submitted %s as %s", spec.name, job_id)
        return job_id

    # ------------------------------------------------------------ execution
    def classify_transient(self, result: CommandResult) -> bool:
        """True when a failure is the cluster's fault (retry), False when the request's."""
        text = f"{result.stderr}\n{result.stdout}"
        if any(p.search(text) for p in self.permanent_errors):
            return False
        if any(p.search(text) for p in self.transient_errors):
            return True
        # killed by a signal (negative rc from subprocess, 128+n from a shell/ssh)
        return result.returncode < 0 or result.returncode in (129, 130, 137, 143, 255)

    def _run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        cwd: PurePosixPath | None = None,
        ok_returncodes: Sequence[int] = (0,),
        as_self: bool = False,
    ) -> CommandResult:
        """Run one command; raise ``CommandFailed`` (classified) unless rc is acceptable.

        ``RunnerError`` (no connection, timeout) propagates unchanged: it is
        already transient. Unless ``as_self``, the command runs as ``run_as``.
        """
        if not as_self:
            argv = sudo_argv(self.run_as, argv, self.pass_environment)
        try:
            result = self.runner.run(argv, stdin=stdin, cwd=cwd, timeout=self.timeout)
        except RunnerError:
            self.log.warning("runner failed for %s", argv[0])
            raise
        self.log.debug(
            "ran %r rc=%s in %.3fs (%d bytes out)",
            list(argv), result.returncode, result.duration_s, len(result.stdout),
        )
        if result.returncode not in ok_returncodes:
            transient = self.classify_transient(result)
            self.log.warning(
                "%s failed rc=%s transient=%s: %s",
                argv[0], result.returncode, transient, result.stderr.strip()[:500],
            )
            raise CommandFailed.from_result(result, transient=transient)
        if result.stderr.strip():
            # Slurm and PBS sometimes exit 0 while reporting problems (OOD notes this too).
            self.log.warning("%s wrote to stderr: %s", argv[0], result.stderr.strip()[:500])
        return result
