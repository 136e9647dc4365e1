"""fdf text as SIESTA and sisl read it: syntax, includes, labels, and setting a key.

The fdf is user text read on the API host (in a parse worker), so includes are checked
before anything follows them (see :func:`_include`), and every scan is a line scanner
(linear in the input: ``tests/security/test_linear_parsers.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from hpcgate.errors import InvalidInput

__all__ = [
    "PLAIN_NAME_RE",
    "InputError",
    "normalise_label",
    "read_tree",
    "scan_syntax",
    "set_key",
    "strip_comment",
]


class InputError(InvalidInput):
    """The base input cannot make valid SIESTA inputs; the message says where and why."""

    code = "invalid_siesta_input"


def normalise_label(label: str) -> str:
    """fdf labels are case-insensitive and ignore ``.``, ``_`` and ``-``."""
    return re.sub(r"[._-]", "", label).lower()


def strip_comment(line: str) -> str:
    return re.split(r"[#!;]", line, maxsplit=1)[0].strip()


#: What an included file may be called: a plain name of the calculation's own inputs.
PLAIN_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")


def _include(path: Path, n: int, raw: str, name: str, known: dict[str, Path]) -> Path:
    """The file ``name`` included at line ``n``, if it is one of the input set's own files.

    Why: the fdf is user text, and an include is a file read on the machine that prepares
    the inputs (the API host) and staged into the job. So only plain names in the same
    directory qualify: no absolute path, no directory, no ``..``, no symbolic link.
    """
    if name in known:  # checked already (a file may redirect many labels to one file)
        return known[name]
    where = f"{path.name}:{n}: {raw.strip()[:200]!r}"
    if not name:
        raise InputError(f"{where}: an include needs a file name")
    if not PLAIN_NAME_RE.fullmatch(name) or name in (".", ".."):
        raise InputError(
            f"{where}: include {name[:100]!r} refused: only this calculation's own input "
            "files can be included (a plain file name: no absolute path, directory or '..')"
        )
    target = path.parent / name
    if target.is_symlink():
        raise InputError(f"{where}: include {name!r} refused: it is a symbolic link")
    known[name] = target
    return target


def _check_includes(path: Path, n: int, raw: str, known: dict[str, Path]) -> None:
    """Refuse any include a reader could follow on this line, however it reads comments.

    SIESTA ends a line at ``#``, ``!`` or ``;``; sisl (which reads the fdf here) only at
    ``#``. So the line up to ``#`` is checked: every ``%include`` and ``<`` it holds.
    """
    view = raw.split("#", 1)[0]
    words = view.split(maxsplit=1)
    if words and words[0].lower() == "%include":
        _include(path, n, raw, words[1].strip() if len(words) > 1 else "", known)
    if "<" in view:
        if view.count("<") > 1:
            raise InputError(f"{path.name}:{n}: {raw.strip()[:200]!r}: more than one '<'")
        _include(path, n, raw, view.split("<", 1)[1].strip(), known)


def _include_once(
    path: Path,
    n: int,
    raw: str,
    words: list[str],
    known: dict[str, Path],
    included_once: dict[Path, str],
) -> Path:
    """The file of a ``%include`` line, refused when it was included before."""
    if len(words) < 2:
        raise InputError(f"{path.name}:{n}: %include without a file name")
    target = _include(path, n, raw, words[1], known)
    if target in included_once or target == path:
        first = included_once.get(target, "the file itself")
        raise InputError(
            f"{path.name}:{n}: {raw.strip()[:200]!r}: {target.name} is already "
            f"included ({first}); each file may be included once"
        )
    included_once[target] = f"{path.name}:{n}"
    return target


def scan_syntax(
    path: Path, text: str, included_once: dict[Path, str] | None = None
) -> tuple[list[Path], dict[str, list[str]]]:
    """Check %block structure; return included/redirected files and the blocks' lines.

    ``included_once`` (the files ``%include``\\ d so far, and where) refuses a second
    ``%include`` of a file: a reader follows every one, so repeats nest exponentially (a
    includes b twice, b includes c twice...) and a file that includes itself never ends.
    """
    included_once = {} if included_once is None else included_once
    known: dict[str, Path] = {}
    included: list[Path] = []
    blocks: dict[str, list[str]] = {}
    current: str | None = None
    start = 0
    for n, raw in enumerate(text.splitlines(), start=1):
        _check_includes(path, n, raw, known)
        line = strip_comment(raw)
        if not line:
            continue
        words = line.split()
        head = words[0].lower()
        if head == "%block":
            if current is not None:
                raise InputError(f"{path.name}:{n}: %block inside the block opened at line {start}")
            if len(words) < 2:
                raise InputError(f"{path.name}:{n}: %block without a name")
            current, start = normalise_label(words[1]), n
            blocks.setdefault(current, [])
            if len(words) >= 4 and words[2] == "<":
                included.append(_include(path, n, raw, words[3], known))
                current = None  # a redirected block has no body and no %endblock
            continue
        if head == "%endblock":
            if current is None:
                raise InputError(f"{path.name}:{n}: %endblock without an open %block")
            if len(words) >= 2 and normalise_label(words[1]) != current:
                raise InputError(
                    f"{path.name}:{n}: %endblock {words[1]} closes the block opened at line {start}"
                )
            current = None
            continue
        if current is not None:
            blocks[current].append(line)
            continue
        if head == "%include":
            included.append(_include_once(path, n, raw, words, known, included_once))
        elif len(words) >= 3 and words[1] == "<":
            included.append(_include(path, n, raw, words[2], known))
        elif head.startswith("%"):
            raise InputError(f"{path.name}:{n}: unknown directive {words[0]}")
    if current is not None:
        raise InputError(f"{path.name}:{start}: %block is never closed (no %endblock)")
    return included, blocks


def read_tree(fdf: Path) -> tuple[list[Path], dict[str, list[str]]]:
    """The fdf and every file it includes (recursively), with all blocks merged."""
    seen: list[Path] = []
    blocks: dict[str, list[str]] = {}
    included_once: dict[Path, str] = {fdf: "the main input"}
    todo = [fdf]
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        if not path.is_file():
            raise InputError(f"{path.name}: included by the input but not found in {path.parent}")
        seen.append(path)
        included, found = scan_syntax(
            path, path.read_text(encoding="utf-8", errors="replace"), included_once
        )
        for key, lines in found.items():
            blocks.setdefault(key, lines)
        todo.extend(included)
    return seen, blocks


def _respell(files: Sequence[Path], key: str) -> None:
    """Rewrite existing lines whose label matches ``key`` (fdf rules) to ``key``'s spelling."""
    target = normalise_label(key)
    for path in files:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        changed = False
        depth = 0
        for i, line in enumerate(lines):
            words = strip_comment(line).split()
            if not words:
                continue
            low = words[0].lower()
            if low == "%block":
                depth += 1
            elif low == "%endblock":
                depth = max(0, depth - 1)
            elif depth == 0 and words[0] != key and normalise_label(words[0]) == target:
                lines[i] = line.replace(words[0], key, 1)
                changed = True
        if changed:
            path.write_text("".join(lines), encoding="utf-8")


def set_key(fdf: Path, files: Sequence[Path], key: str, value: str) -> None:
    import sisl.io.siesta as siesta_io

    _respell(files, key)
    _end_with_newline(fdf)  # sisl appends a new key right after the last byte
    siesta_io.fdfSileSiesta(str(fdf)).set(key, value, keep=False)  # value is always a str
    _end_with_newline(fdf)


def _end_with_newline(path: Path) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data + b"\n")
