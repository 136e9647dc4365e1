"""Per-code knowledge the engine needs: which template, which inputs, what a step inherits.

A code plugin turns (base input files, one variant's parameters, is-this-a-dependent-step)
into the files staged in the step (or task) directory and the template context. Parameter
values are data, never shell: they are written into input files, and the job script only
ever sees fixed file names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from hpcgate.errors import InvalidInput, TooLarge

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


@dataclass(frozen=True)
class CodePlugin:
    name: str
    template: str
    default_main_input: str
    default_inherit: tuple[str, ...]
    prepare: Prepare
    validates: bool = True


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


def _check_params(params: Mapping[str, Any]) -> None:
    for key, value in params.items():
        if not _PARAM_KEY_RE.match(str(key)):
            raise InvalidInput(f"parameter name {key!r} is not allowed")
        if not isinstance(value, str | int | float | bool):
            raise InvalidInput(f"parameter {key!r} must be a string, number or boolean")
        if isinstance(value, str) and ("\n" in value or "\r" in value or len(value) > 500):
            raise InvalidInput(f"parameter {key!r} must be a single line of at most 500 characters")


# --------------------------------------------------------------------------- SIESTA


def prepare_siesta(
    files: Mapping[str, str],
    main: str,
    params: Mapping[str, Any],
    dependent: bool,
    *,
    binary: frozenset[str] = frozenset(),
) -> PreparedInputs:
    """Build one variant's SIESTA inputs with ``analyses.siesta.inputs.generate_inputs``.

    That checks the fdf (syntax, ``%include`` files, a pseudopotential for every species),
    sets keys the way SIESTA reads them (first occurrence wins, any spelling), and applies
    rotations. A dependent chain step restarts from the parent's density matrix
    (``DM.UseSaveDM``; TranSIESTA also its ``.TSDE``), which the job copies in at start.
    """
    import tempfile
    from pathlib import Path

    from analyses.siesta.inputs import generate_inputs

    _check_params({k: v for k, v in params.items() if k != "rotation"})
    if main not in files:
        raise InvalidInput(f"the main input {main!r} is not among the input files")
    with tempfile.TemporaryDirectory(prefix="hpcgate-siesta-") as tmp:
        src = Path(tmp) / "base"
        src.mkdir()
        for name, text in files.items():
            (src / name).write_text(text, encoding="utf-8")
        for name in binary:  # present for the checks (a .psml, an .ion.nc); staged as bytes
            (src / name).touch()
        (generated,) = generate_inputs(src / main, [dict(params)], Path(tmp) / "out", chain=False)
        out = {
            str(p.relative_to(generated.directory)): p.read_text(encoding="utf-8", errors="replace")
            for p in sorted(generated.directory.rglob("*"))
            if p.is_file() and str(p.relative_to(generated.directory)) not in binary
        }
        for name, text in files.items():  # files the fdf does not reference (electrodes...)
            out.setdefault(name, text)
    if dependent:
        header = (
            "# hpcgate: continue from the parent step (first occurrence wins)\nDM.UseSaveDM true\n"
        )
        out[main] = header + out[main]
    return PreparedInputs(out, {"input": main, "output": f"{generated.label}.out"})


# ------------------------------------------------------------------ Quantum ESPRESSO
_NAMELIST_HEAD_RE = re.compile(r"[ \t]*&(\w+)")  # matched on one line at a time


def prepare_qe(
    files: Mapping[str, str],
    main: str,
    params: Mapping[str, Any],
    dependent: bool,
    *,
    binary: frozenset[str] = frozenset(),
) -> PreparedInputs:
    """Override namelist variables (``system.ecutwfc`` or plain ``ecutwfc``) in a pw.x input.

    A dependent chain step restarts from the parent's charge density and wavefunctions,
    which the job script copies into ``outdir`` before pw.x starts.
    """
    _check_params(params)
    if main not in files:
        raise InvalidInput(f"the main input {main!r} is not among the input files")
    text = files[main]
    overrides: dict[tuple[str | None, str], Any] = {}
    for key, value in params.items():
        nl, _, var = str(key).rpartition(".")
        overrides[(nl.lower() or None, var)] = value
    if dependent:
        overrides[("electrons", "startingpot")] = "file"
        overrides[("electrons", "startingwfc")] = "file"
    text = _apply_namelist_overrides(text, overrides)
    return PreparedInputs({**files, main: text}, {"input": main, "output": "pw.out"})


def _qe_literal(value: Any) -> str:
    if isinstance(value, bool):
        return ".true." if value else ".false."
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if re.fullmatch(r"[-+]?\d+(\.\d*)?([eEdD][-+]?\d+)?|\.(true|false)\.", text, re.I):
        return text
    return "'" + text.replace("'", "") + "'"


def _namelists(lines: list[str]) -> dict[str, tuple[int, int]]:
    """``{name: (header line, "/" line)}`` in one pass over the lines (the last of a name).

    A line scanner, not one regex over the whole text: ``(?ms)^\\s*&(\\w+)(.*?)^\\s*/``
    retried the lazy body from every ``&`` and every line start, so a 300 KB input of
    ``&a`` lines took minutes (issue 15). Each line is looked at once here.
    """
    out: dict[str, tuple[int, int]] = {}
    open_name: str | None = None
    head = 0
    for n, line in enumerate(lines):
        if open_name is None:
            m = _NAMELIST_HEAD_RE.match(line)
            if m:
                open_name, head = m.group(1).lower(), n
        elif line.strip() == "/":
            out[open_name] = (head, n)
            open_name = None
    return out


def _apply_namelist_overrides(text: str, overrides: Mapping[tuple[str | None, str], Any]) -> str:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += "\n"  # so an inserted line never joins the last one
    namelists = _namelists(lines)
    pending = dict(overrides)
    # Replace existing assignments (the first one found, in the named namelist or any).
    for (nl, var), value in list(pending.items()):
        pattern = re.compile(rf"(?im)((?:^|[\s,]){re.escape(var)}\s*=\s*)([^,\n/]+)")
        literal = _qe_literal(value)
        targets = [namelists[nl]] if nl and nl in namelists else list(namelists.values())
        for head, end in targets:
            header = _NAMELIST_HEAD_RE.match(lines[head])
            assert header is not None  # _namelists found it there
            cut = header.end()
            body = lines[head][cut:] + "".join(lines[head + 1 : end])
            m = pattern.search(body)
            if m:
                new_body = body[: m.start(2)] + literal + body[m.end(2) :]
                new_lines = (lines[head][:cut] + new_body).splitlines(keepends=True)
                lines[head:end] = new_lines
                namelists = _namelists(lines)
                pending.pop((nl, var))
                break
    # Insert the rest into their namelist (default &system), before its "/" line.
    for (nl, var), value in pending.items():
        target = nl or "system"
        found = namelists.get(target)
        if found is None:
            raise InvalidInput(f"pw.x input has no &{target} namelist for parameter {var!r}")
        lines.insert(found[1], f"  {var} = {_qe_literal(value)}\n")
        namelists = _namelists(lines)
    return "".join(lines)


# --------------------------------------------------------------------------- generic
def prepare_generic(
    files: Mapping[str, str],
    main: str,
    params: Mapping[str, Any],
    dependent: bool,
    *,
    binary: frozenset[str] = frozenset(),
) -> PreparedInputs:
    """Any program: parameters arrive as a JSON file (data) and as ``HPCGATE_PARAM_*``
    variables, which the job script itself exports (``engine/params.py``; never a sourced
    file, which a user's upload could replace)."""
    _check_params(params)
    out = dict(files)
    out["hpcgate-params.json"] = json.dumps(dict(params), indent=1, default=str)
    return PreparedInputs(out, {})


PLUGINS: dict[str, CodePlugin] = {
    # Not *.TSHS: SIESTA rebuilds H from the DM, and a stale TSHS could mislead TBtrans.
    "siesta": CodePlugin("siesta", "siesta.j2", "input.fdf", ("*.DM", "*.TSDE"), prepare_siesta),
    "qe": CodePlugin("qe", "qe.j2", "pw.in", ("tmp",), prepare_qe),
    "generic": CodePlugin("generic", "generic.j2", "", (), prepare_generic, validates=False),
}


def get_plugin(code: str) -> CodePlugin:
    try:
        return PLUGINS[code]
    except KeyError:
        raise InvalidInput(
            f"unknown code {code!r}: choose one of {', '.join(sorted(PLUGINS))}"
        ) from None
