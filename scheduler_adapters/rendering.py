"""Rendering batch scripts from Jinja2 templates.

Why Jinja2 with these settings:

* ``StrictUndefined``: a typo in a template or a missing context key is an
  error at render time, never an empty ``#SBATCH`` directive.
* ``autoescape=False`` plus the ``sh`` filter: scripts are shell, not HTML.
  Every free-text value must go through ``| sh`` (``shlex.quote``); a unit test
  scans the templates for ``{{ ... }}`` expressions that do not.
* ``dv`` ("directive value"): Slurm's ``#SBATCH`` parser knows double quotes
  only, so single-quoted shell words are wrong there. Values on directive lines
  are instead *validated* against a conservative charset and rejected otherwise.
* A ``ChoiceLoader``: per-cluster admin override directories come first, the
  built-in templates last, so an admin can replace one partial (say
  ``_slurm_directives.j2``) without copying the rest.

The scheduler-specific header is chosen by name:
``{% include "_" ~ scheduler ~ "_directives.j2" %}``; bodies (``generic.j2``,
``siesta.j2``, ``qe.j2``) stay scheduler-neutral and read the array index from
``$HPCGATE_TASK_INDEX``, exported by ``_prologue.j2``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2

import scheduler_adapters
from scheduler_adapters.errors import RenderError
from scheduler_adapters.types import JobSpec

TEMPLATE_SUBDIR = "sbatch"

_DIRECTIVE_VALUE_RE = re.compile(r"^[A-Za-z0-9_./:+=@%,~-]+$")
_GLOB_RE = re.compile(r"^[A-Za-z0-9_./:+=@%,~*?\[\]-]+$")
_WALLTIME_RE = re.compile(
    r"^(?:(?P<days>[0-9]+)-)?(?P<a>[0-9]+)(?::(?P<b>[0-9]+))?(?::(?P<c>[0-9]+(?:\.[0-9]+)?))?$"
)


def builtin_template_dir() -> Path:
    """Where the shipped templates live.

    A wheel carries them inside the package (pyproject force-includes the repo's
    ``templates/`` as ``scheduler_adapters/_templates``); an editable or source
    checkout reads the repo's ``templates/`` directly.
    """
    package_dir = Path(scheduler_adapters.__file__).resolve().parent
    packaged = package_dir / "_templates" / TEMPLATE_SUBDIR
    if packaged.is_dir():
        return packaged
    return package_dir.parent / "templates" / TEMPLATE_SUBDIR


def shell_quote(value: object) -> str:
    """``shlex.quote`` for any value; None is refused rather than rendered as 'None'."""
    if value is None or isinstance(value, jinja2.Undefined):
        raise RenderError("cannot shell-quote an undefined/None value")
    return shlex.quote(str(value))


def directive_value(value: object) -> str:
    """Pass a value onto a directive line only if it needs no quoting at all."""
    text = str(value)
    if not _DIRECTIVE_VALUE_RE.fullmatch(text):
        raise RenderError(
            f"value {text!r} is not safe on a scheduler directive line "
            f"(allowed: {_DIRECTIVE_VALUE_RE.pattern})"
        )
    return text


def shell_glob(value: object) -> str:
    """A file pattern that must stay unquoted (so the shell expands it): validated instead.

    Only word characters and ``* ? [ ]`` are allowed, no absolute paths and no ``..``
    component, so a pattern can neither run anything nor leave the directory it is
    appended to.
    """
    text = str(value)
    if (
        not _GLOB_RE.fullmatch(text)
        or text.startswith("/")
        or ".." in PurePosixPath(text).parts
    ):
        raise RenderError(
            f"file pattern {text!r} is not allowed (allowed: {_GLOB_RE.pattern}, "
            "relative, no '..')"
        )
    return text


def format_walltime(seconds: int, *, days: bool = True) -> str:
    """Seconds as ``D-HH:MM:SS`` (or ``HH:MM:SS``, hours may exceed 23 if ``days=False``).

    Slurm accepts both; PBS wants ``HH:MM:SS`` only, hence the switch.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
        raise RenderError(f"walltime must be a non-negative int of seconds, got {seconds!r}")
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    if days and d:
        return f"{d}-{h:02d}:{m:02d}:{s:02d}"
    return f"{h + 24 * d:02d}:{m:02d}:{s:02d}"


def parse_walltime(text: str) -> float:
    """Inverse of :func:`format_walltime`, plus the other forms Slurm prints.

    Slurm time specs: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``,
    ``D-HH:MM:SS``; sacct's TotalCPU adds fractions (``00:00.004``). Raises
    ``ValueError`` on anything else (including ``UNLIMITED``/``INVALID``).
    """
    m = _WALLTIME_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a walltime: {text!r}")
    days = int(m["days"]) if m["days"] else 0
    parts = [p for p in (m["a"], m["b"], m["c"]) if p is not None]
    if m["days"] is not None:
        # D-HH[:MM[:SS]]
        if "." in parts[0] or (len(parts) > 1 and "." in parts[1]):
            raise ValueError(f"not a walltime: {text!r}")
        h = int(parts[0])
        mi = int(parts[1]) if len(parts) > 1 else 0
        s = float(parts[2]) if len(parts) > 2 else 0.0
    elif len(parts) == 3:
        h, mi, s = int(parts[0]), int(parts[1]), float(parts[2])
    elif len(parts) == 2:
        h, mi, s = 0, int(parts[0]), float(parts[1])
    else:
        if "." in parts[0]:
            raise ValueError(f"not a walltime: {text!r}")
        h, mi, s = 0, int(parts[0]), 0.0
    return days * 86400 + h * 3600 + mi * 60 + s


def format_mem_mb(megabytes: int, style: str = "slurm") -> str:
    """Megabytes in the scheduler's unit syntax: Slurm ``4G``/``500M``, PBS ``4gb``/``500mb``."""
    if isinstance(megabytes, bool) or not isinstance(megabytes, int) or megabytes < 1:
        raise RenderError(f"memory must be a positive int of MB, got {megabytes!r}")
    if style not in ("slurm", "pbs"):
        raise RenderError(f"unknown memory style {style!r}")
    if megabytes % 1024 == 0:
        value, unit = megabytes // 1024, "G"
    else:
        value, unit = megabytes, "M"
    return f"{value}{unit}" if style == "slurm" else f"{value}{unit.lower()}b"


def array_range(spec: JobSpec) -> str:
    """``0-9%4``-style array string (Slurm ``--array``; PBS drops the throttle)."""
    if spec.array is None:
        raise RenderError("job has no array")
    text = spec.array.compact()
    if spec.array.max_concurrent is not None:
        text += f"%{spec.array.max_concurrent}"
    return text


def _fail(message: str) -> str:
    """Template-side ``raise``: ``{{ fail("unknown launcher") }}``."""
    raise RenderError(message)


def make_environment(template_dirs: Sequence[str | Path] = ()) -> jinja2.Environment:
    """The one Jinja2 environment configuration used for every scheduler."""
    loaders: list[jinja2.BaseLoader] = [
        jinja2.FileSystemLoader(str(Path(d))) for d in template_dirs
    ]
    loaders.append(jinja2.FileSystemLoader(str(builtin_template_dir())))
    # Shell scripts, not HTML: escaping is the explicit `sh` filter.
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals["fail"] = _fail
    env.filters.update(
        {
            "sh": shell_quote,
            "dv": directive_value,
            "glob": shell_glob,
            "walltime": format_walltime,
            "mem": format_mem_mb,
        }
    )
    return env


class Renderer:
    """Renders a :class:`JobSpec` for one scheduler (``slurm``, ``pbs``, ``local``).

    Template variables: ``scheduler``, ``spec``, ``resources``, ``context``,
    ``environment``, ``array_range`` (or None) and whatever the adapter passes
    as ``extra`` (e.g. output file patterns).
    """

    def __init__(self, scheduler: str, template_dirs: Sequence[str | Path] = ()) -> None:
        if not re.match(r"^[a-z][a-z0-9_]*$", scheduler):
            raise ValueError(f"bad scheduler name {scheduler!r}")
        self.scheduler = scheduler
        self.template_dirs = tuple(Path(d) for d in template_dirs)
        self.env = make_environment(self.template_dirs)

    def variables(self, spec: JobSpec, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        variables: dict[str, Any] = {
            "scheduler": self.scheduler,
            "spec": spec,
            "resources": spec.resources,
            "context": dict(spec.context),
            "environment": dict(spec.environment),
            "array_range": array_range(spec) if spec.array is not None else None,
        }
        if extra:
            variables.update(extra)
        return variables

    def render(self, spec: JobSpec, extra: Mapping[str, Any] | None = None) -> str:
        return self.render_template(spec.template, self.variables(spec, extra))

    def render_template(self, name: str, variables: Mapping[str, Any]) -> str:
        try:
            return self.env.get_template(name).render(**variables)
        except jinja2.TemplateNotFound as exc:
            raise RenderError(
                f"template {exc.name!r} not found (scheduler {self.scheduler})"
            ) from exc
        except jinja2.UndefinedError as exc:
            raise RenderError(f"template {name!r}: {exc.message}") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(
                f"template {exc.name or name!r} line {exc.lineno}: {exc.message}"
            ) from exc
