"""The code plugin: everything hpcgate knows about one numerical code, behind one protocol.

A code (SIESTA, Quantum ESPRESSO, a generic program) lives in ``hpcgate/codes/<code>/``:

* ``prepare.py`` turns (base input files, one variant's parameters, is-this-a-dependent-
  step) into the files staged in the step (or task) directory and the template context.
  Parameter values are data, never shell: they are written into input files, and the job
  script only ever sees fixed file names;
* ``markers.py`` is the one table of the stdout lines the code prints (banners, SCF and
  geometry markers), shared by the in-job validator and the analyses' parsers;
* ``validate.py`` holds the :class:`~hpcgate.codes.scan.Analyzer` that gives the verdict
  ``hpcgate validate`` exits with.

:mod:`hpcgate.codes.registry` lists the plugins. Everything reachable from it stays
import-light (no sisl, no numpy at import time): validation runs at the end of every job.
This module also holds the input checks every code shares (file names, sizes, parameters).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hpcgate.errors import InvalidInput, TooLarge

if TYPE_CHECKING:
    from hpcgate.codes.recovery import CodeRecovery
    from hpcgate.codes.scan import Analyzer

__all__ = [
    "MAX_INPUT_FILE_BYTES",
    "RESERVED_PREFIX",
    "CodePlugin",
    "Plugin",
    "Prepare",
    "PreparedInputs",
    "check_binary_inputs",
    "check_input_files",
    "check_input_name",
    "check_params",
]

MAX_INPUT_FILE_BYTES = 8 << 20
_FILENAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$")
_PARAM_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.()%-]{0,63}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# hpcgate's own files in a step directory (parameters, state): never a user's input name.
RESERVED_PREFIX = "hpcgate-"


@dataclass(frozen=True)
class PreparedInputs:
    files: dict[str, str]
    context: dict[str, Any]


class Prepare(Protocol):
    """``binary``: names of the binary inputs staged beside ``files`` (their bytes are not
    given: a plugin only needs to know they will be there, e.g. a ``.psml``)."""

    def __call__(
        self,
        files: Mapping[str, str],
        main: str,
        params: Mapping[str, Any],
        dependent: bool,
        *,
        binary: frozenset[str] = ...,
    ) -> PreparedInputs: ...


class CodePlugin(Protocol):
    """What the engine, the validator and the job templates ask of a code."""

    @property
    def name(self) -> str:
        """The ``code`` of a calculation (``siesta``, ``qe``, ``generic``)."""

    @property
    def template(self) -> str:
        """The job template (``templates/sbatch/<template>``)."""

    @property
    def default_main_input(self) -> str:
        """The main input file when the configuration names none."""

    @property
    def default_inherit(self) -> tuple[str, ...]:
        """File patterns a dependent step copies from its parent."""

    @property
    def program(self) -> str | None:
        """The program a job runs when its step names none (looked up in a cluster's
        ``options.programs``); None when the user gives the command."""

    @property
    def aliases(self) -> tuple[str, ...]:
        """Other names ``hpcgate validate --code`` accepts for this code."""

    @property
    def validates(self) -> bool:
        """Whether the job runs ``hpcgate validate`` after the program."""

    @property
    def prepare(self) -> Prepare:
        """Build one variant's staged files and template context (see :class:`Prepare`)."""

    @property
    def recovery(self) -> CodeRecovery | None:
        """The recovery ladder's rungs and defaults (``codes/recovery.py``); None: no retry."""

    def banner_at(self, head: bytes) -> int | None:
        """Where this code's banner starts in the first bytes of a stdout, or None."""

    def is_main_program(self, head: bytes) -> bool:
        """False for a post-processing stdout (TBtrans): the main run is preferred."""

    def analyzer(self, stdout: Path) -> Analyzer:
        """A fresh analyzer of ``stdout`` (only called when ``validates``)."""


def _no_banner(head: bytes) -> int | None:
    return None


def _always_main(head: bytes) -> bool:
    return True


@dataclass(frozen=True)
class Plugin:
    """A :class:`CodePlugin` assembled from the functions of a code's modules."""

    name: str
    template: str
    default_main_input: str
    default_inherit: tuple[str, ...]
    prepare: Prepare
    program: str | None = None
    aliases: tuple[str, ...] = ()
    analyzer_factory: Callable[[Path], Analyzer] | None = None
    find_banner: Callable[[bytes], int | None] = _no_banner
    main_program: Callable[[bytes], bool] = _always_main
    recovery: CodeRecovery | None = None

    @property
    def validates(self) -> bool:
        return self.analyzer_factory is not None

    def banner_at(self, head: bytes) -> int | None:
        return self.find_banner(head)

    def is_main_program(self, head: bytes) -> bool:
        return self.main_program(head)

    def analyzer(self, stdout: Path) -> Analyzer:
        if self.analyzer_factory is None:
            raise ValueError(f"code {self.name!r} has no validator")
        return self.analyzer_factory(stdout)


# --------------------------------------------------------------------------- input checks


def check_input_name(name: Any) -> str:
    """A plain file name (no paths, no traversal) that is not one of hpcgate's own."""
    if not isinstance(name, str) or not _FILENAME_RE.match(name) or name in (".", ".."):
        raise InvalidInput(
            f"input file name {name!r} is not allowed: use a plain file name "
            "(letters, digits, '_', '.', '+', '-'; no directories)"
        )
    if name.lower().startswith(RESERVED_PREFIX):
        raise InvalidInput(
            f"input file name {name!r} is reserved: names starting with "
            f"{RESERVED_PREFIX!r} belong to hpcgate"
        )
    return name


def check_binary_inputs(refs: Any, text_names: Collection[str]) -> dict[str, str]:
    """``binary_inputs``: {file name: sha256 of an uploaded blob}, names unlike any text input."""
    if refs is None:
        return {}
    if not isinstance(refs, Mapping):
        raise InvalidInput("'binary_inputs' must be an object mapping file names to sha256 hashes")
    out: dict[str, str] = {}
    for name, digest in refs.items():
        check_input_name(name)
        if name in text_names:
            raise InvalidInput(f"input file {name!r} is given both as text and as a binary file")
        if not isinstance(digest, str) or not _SHA256_RE.match(digest):
            raise InvalidInput(
                f"binary input {name!r} must name an uploaded file by its sha256 "
                "(64 lowercase hex digits)"
            )
        out[name] = digest
    return out


def check_input_files(files: Mapping[str, Any]) -> dict[str, str]:
    """Input file names must be plain names (no paths, no traversal), contents text and bounded."""
    if not isinstance(files, Mapping):
        raise InvalidInput("'inputs' must be an object mapping file names to text")
    out: dict[str, str] = {}
    total = 0
    for name, text in files.items():
        check_input_name(name)
        if not isinstance(text, str):
            raise InvalidInput(f"input file {name!r} must be text")
        total += len(text.encode())
        if total > MAX_INPUT_FILE_BYTES:
            raise TooLarge(f"input files exceed {MAX_INPUT_FILE_BYTES >> 20} MiB in total")
        out[name] = text
    return out


def check_params(params: Mapping[str, Any]) -> None:
    """Parameter names from a strict charset; values scalars on one bounded line."""
    for key, value in params.items():
        if not _PARAM_KEY_RE.match(str(key)):
            raise InvalidInput(f"parameter name {key!r} is not allowed")
        if not isinstance(value, str | int | float | bool):
            raise InvalidInput(f"parameter {key!r} must be a string, number or boolean")
        if isinstance(value, str) and ("\n" in value or "\r" in value or len(value) > 500):
            raise InvalidInput(f"parameter {key!r} must be a single line of at most 500 characters")
