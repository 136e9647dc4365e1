"""What a job may inherit from the process that submits it: an allow-list, never "everything".

The submitting process (the service's worker, the agent) holds secrets in its environment
(secret key, database URL, SMTP password). A job is untrusted code, so it starts with only:

* the scheduler's own variables (``SLURM_*``, ``PBS_*``; the scheduler sets them);
* basic variables of a login session (:data:`BASE_NAMES`, ``LC_*``);
* the names a cluster admin passes on purpose (``options.pass_environment``);
* ``HPCGATE_PARAM_*`` and the admin's fixed values (``options.job_environment``), which the
  job script itself exports, so they never come from the submitter's environment.
"""

from __future__ import annotations

import os
import pwd
import re
from collections.abc import Iterable, Mapping

# Login-session basics. HOME/USER/LOGNAME/SHELL describe the job's own account: callers that
# switch accounts overwrite them with :func:`account_environment`.
BASE_NAMES: tuple[str, ...] = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
)
LC_NAMES: tuple[str, ...] = (
    "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "LC_TIME", "LC_COLLATE", "LC_MONETARY",
    "LC_MESSAGES", "LC_PAPER", "LC_NAME", "LC_ADDRESS", "LC_TELEPHONE", "LC_MEASUREMENT",
    "LC_IDENTIFICATION",
)
# Never passable, whatever an admin lists: the service's own settings and the variables a
# job script derives itself (the local executor's job id would be forged otherwise).
_RESERVED = re.compile(r"^(HPCGATE_|SLURM_|PBS_)")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def check_names(names: Iterable[str]) -> tuple[str, ...]:
    """Validate admin-chosen variable names; raise ``ValueError`` naming the bad one."""
    out: list[str] = []
    for name in names:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ValueError(f"{name!r} is not a valid environment variable name")
        if _RESERVED.match(name):
            raise ValueError(f"{name!r} is reserved: HPCGATE_*, SLURM_* and PBS_* are never passed")
        out.append(name)
    return tuple(dict.fromkeys(out))


def passable_names(pass_names: Iterable[str] = ()) -> tuple[str, ...]:
    """Every name a job may inherit from the submitter, in a stable order."""
    return tuple(dict.fromkeys((*BASE_NAMES, *LC_NAMES, *check_names(pass_names))))


def allowed_environment(
    source: Mapping[str, str], pass_names: Iterable[str] = ()
) -> dict[str, str]:
    """The subset of ``source`` a job (or a scheduler command) may see."""
    return {k: source[k] for k in passable_names(pass_names) if k in source}


# Scheduler *client* configuration: the commands need these, jobs get their own from the
# scheduler. Kept in a command's environment, never passed to a job by hpcgate.
CLIENT_CONFIG_NAMES: tuple[str, ...] = (
    "SLURM_CONF", "PBS_CONF_FILE", "PBS_SERVER", "PBS_DEFAULT", "PBS_HOME", "PBS_EXEC",
)


def command_environment(
    source: Mapping[str, str] | None = None, pass_names: Iterable[str] = ()
) -> dict[str, str]:
    """The environment scheduler commands run with: what a job may inherit, plus the client
    configuration. A submit command that exports everything (``sbatch --export=ALL``, which
    the Slurm adapter uses, ``qsub -V``) therefore hands on exactly this, never a secret."""
    src = os.environ if source is None else source
    env = allowed_environment(src, pass_names)
    env.update({k: src[k] for k in CLIENT_CONFIG_NAMES if k in src})
    env.setdefault("PATH", DEFAULT_PATH)
    return env


def account_environment(account: str) -> dict[str, str]:
    """HOME, USER, LOGNAME and SHELL of ``account`` (a job switched to it must not keep ours)."""
    entry = pwd.getpwnam(account)
    shell = entry.pw_shell
    if not shell or shell.endswith(("/nologin", "/false")):
        shell = "/bin/sh"
    return {"HOME": entry.pw_dir, "USER": account, "LOGNAME": account, "SHELL": shell}


def job_environment(
    source: Mapping[str, str] | None = None,
    pass_names: Iterable[str] = (),
    *,
    account: str | None = None,
) -> dict[str, str]:
    """The environment a job starts with on this machine (the local executor's tasks)."""
    env = allowed_environment(os.environ if source is None else source, pass_names)
    env.setdefault("PATH", DEFAULT_PATH)
    if account is not None:
        env.update(account_environment(account))
    return env
