"""Pure argv builders for PBS Pro / OpenPBS and Torque (no I/O; unit-tested by value).

Two flavors differ in a few options only:

==============  ===============================  ===============================
                PBS Pro / OpenPBS (``pbspro``)   Torque (``torque``)
==============  ===============================  ===============================
array           ``-J start-end[:step][%k]``      ``-t 0-3,7,9[%k]`` (any list)
array depend    ``afterok:123[].srv``            ``afterokarray:123[].srv``
full status     ``qstat -f -F json [-x] [-t]``   ``qstat -f [-t]`` (text only)
nodes           ``pbsnodes -a -F json``          ``pbsnodes -a`` (text only)
==============  ===============================  ===============================

Job ids are kept in the server's native spelling (``1234.server``,
``123[].server``, or the bare ``55`` the Slurm wrappers print); a task of an
array is ``JobId("123[].server", 4)`` and goes on a command line as
``123[4].server`` (:func:`native_id`).

The Debian ``slurm-wlm-torque`` wrappers (``wrappers=True``) build a *shell
string* for sbatch out of qsub's arguments (``/usr/bin/qsub``: ``my
@command_output = `$command 2>&1```), so every word handed to them must be free
of shell metacharacters; :func:`qsub` enforces that instead of quoting, because
the wrapper would pass the quotes through literally.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Literal

from scheduler_adapters.errors import UnsupportedFeature
from scheduler_adapters.types import ArraySpec, JobId

Flavor = Literal["pbspro", "torque"]
FLAVORS: tuple[Flavor, ...] = ("pbspro", "torque")

# A native PBS job id: sequence number, optional array brackets, optional server.
NATIVE_ID_RE = re.compile(
    r"^(?P<seq>\d+)(?:\[(?P<index>\d*)\])?(?P<server>\.[A-Za-z0-9][A-Za-z0-9_.@:-]*)?$"
)
# What may reach the wrappers' shell string unquoted.
_SHELL_SAFE_RE = re.compile(r"^[A-Za-z0-9_./%+=:,@-]+$")


def native_id(job_id: JobId) -> str:
    """The id as PBS spells it on a command line (``123[4].srv`` for a task)."""
    if job_id.task is None:
        return job_id.value
    if "[]" not in job_id.value:
        raise UnsupportedFeature(
            f"job {job_id.value!r} is not a PBS array id (no '[]'); cannot address task "
            f"{job_id.task}"
        )
    return job_id.value.replace("[]", f"[{job_id.task}]", 1)


def is_array_id(job_id: JobId) -> bool:
    return job_id.task is None and "[]" in job_id.value


def _check_flavor(flavor: str) -> Flavor:
    if flavor == "pbspro":
        return "pbspro"
    if flavor == "torque":
        return "torque"
    raise ValueError(f"unknown PBS flavor {flavor!r} (expected one of {FLAVORS})")


def array_option(array: ArraySpec, flavor: Flavor) -> list[str]:
    """``-J``/``-t`` with the throttle; PBS Pro only takes an arithmetic range.

    PBS Pro's ``-J`` grammar is ``start-end[:step][%max]`` (no comma lists), so an
    index set that is not an arithmetic progression cannot be submitted there.
    """
    flavor = _check_flavor(flavor)
    throttle = f"%{array.max_concurrent}" if array.max_concurrent is not None else ""
    if flavor == "torque":
        return ["-t", array.compact() + throttle]
    idx = sorted(array.indices)
    if len(idx) == 1:
        text = f"{idx[0]}-{idx[0]}"
    else:
        step = idx[1] - idx[0]
        if any(b - a != step for a, b in itertools.pairwise(idx)):
            raise UnsupportedFeature(
                f"PBS Pro arrays need an arithmetic index range (-J start-end:step); "
                f"got {array.compact()}"
            )
        text = f"{idx[0]}-{idx[-1]}" + (f":{step}" if step != 1 else "")
    return ["-J", text + throttle]


def depend_option(after_ok: Sequence[JobId], flavor: Flavor) -> list[str]:
    """``-W depend=afterok:a:b[,afterokarray:c[]]``.

    Torque refuses plain ``afterok`` on a whole array and wants
    ``afterokarray`` (its ``qsub(1)``); PBS Pro accepts ``afterok:123[].srv``
    and waits for every subjob.
    """
    flavor = _check_flavor(flavor)
    if not after_ok:
        return []
    plain = [native_id(j) for j in after_ok if not (flavor == "torque" and is_array_id(j))]
    arrays = [native_id(j) for j in after_ok if flavor == "torque" and is_array_id(j)]
    parts = []
    if plain:
        parts.append("afterok:" + ":".join(plain))
    if arrays:
        parts.append("afterokarray:" + ":".join(arrays))
    return ["-W", "depend=" + ",".join(parts)]


def qsub(
    script: PurePosixPath,
    *,
    flavor: Flavor = "pbspro",
    after_ok: Sequence[JobId] = (),
    hold: bool = False,
    array: ArraySpec | None = None,
    wrappers: bool = False,
    stdout_path: PurePosixPath | None = None,
    stderr_path: PurePosixPath | None = None,
) -> list[str]:
    """``qsub [-h] [-W depend=...] [-J|-t range] script``.

    Dependencies, hold and the array range are options, never script content,
    so one rendered script serves a chain head and its dependents. With
    ``wrappers=True`` ``-o``/``-e`` are passed explicitly: the Slurm wrapper
    otherwise adds ``-o <script>.o%A -e <script>.e%A`` to sbatch, and sbatch's
    command line beats the ``#PBS -o`` line of the script.
    """
    flavor = _check_flavor(flavor)
    argv = ["qsub"]
    if hold:
        argv.append("-h")
    argv += depend_option(after_ok, flavor)
    if array is not None:
        argv += array_option(array, flavor)
    if wrappers:
        if stdout_path is not None:
            argv += ["-o", str(stdout_path)]
        if stderr_path is not None:
            argv += ["-e", str(stderr_path)]
        for word in [*argv[1:], str(script)]:
            if not _SHELL_SAFE_RE.match(word):
                raise UnsupportedFeature(
                    f"the slurm-wlm-torque qsub wrapper passes its arguments through a shell "
                    f"unquoted; {word!r} is not safe there"
                )
    argv.append(str(script))
    return argv


def qstat_full(
    job_ids: Sequence[JobId] | None = None,
    *,
    json: bool = True,
    finished: bool = False,
    subjobs: bool = False,
    user: str | None = None,
) -> list[str]:
    """One ``qstat -f`` for all given jobs (or all jobs of ``user``).

    ``json`` needs PBS Pro >= 13 (``-F json``); ``finished`` adds ``-x``
    (PBS Pro job history: F/X jobs with ``Exit_status``); ``subjobs`` adds
    ``-t`` so array subjobs are listed one by one. Torque and the Slurm
    wrappers know none of ``-F``/``-x`` (see the captured "Unknown option").
    """
    argv = ["qstat", "-f"]
    if json:
        argv += ["-F", "json"]
    if finished:
        argv.append("-x")
    if subjobs:
        argv.append("-t")
    if job_ids:
        seen: dict[str, None] = {}
        for j in job_ids:
            seen.setdefault(native_id(j), None)
        argv += list(seen)
    elif user:
        argv += ["-u", user]
    return argv


def qdel(job_ids: Sequence[JobId]) -> list[str]:
    return ["qdel", *(native_id(j) for j in job_ids)]


def qrls(job_ids: Sequence[JobId]) -> list[str]:
    return ["qrls", *(native_id(j) for j in job_ids)]


def pbsnodes(*, json: bool = True) -> list[str]:
    return ["pbsnodes", "-a", "-F", "json"] if json else ["pbsnodes", "-a"]


def qsub_version() -> list[str]:
    """The flavor probe: PBS Pro prints ``pbs_version = ...``, Torque ``Version: ...``,
    the Slurm wrappers ``Unknown option: version``."""
    return ["qsub", "--version"]
