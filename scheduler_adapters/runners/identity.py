"""Running jobs as an account other than the one that holds the service's secrets.

Two mechanisms, both small:

* ``sudo_argv``: scheduler commands are prefixed with ``sudo -n -u ACCOUNT --``. ``-n`` never
  prompts (a missing sudo rule fails at once with "a password is required"), and the site's
  sudoers rule names exactly the scheduler commands (sbatch, scancel, squeue, sacct, scontrol).
* ``hand_over_dir``: a directory the submitter creates for a job becomes usable by the job's
  account and by nobody else. As root the directory is simply given to the account (chown).
  Otherwise (the agent's service account) the owner keeps it, mode 0700, and grants the
  account ``rwx`` with a POSIX ACL, plus *default* ACL entries so that every file the job
  creates stays readable and deletable by the submitter (harvest reads ``.hpcgate/*``,
  cleanup deletes). The ACL is written as the kernel's ``system.posix_acl_*`` xattr, so no
  ``setfacl`` binary is needed.
"""

from __future__ import annotations

import os
import pwd
import re
import struct
from collections.abc import Sequence

from scheduler_adapters.errors import UnsupportedFeature

ACCOUNT_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")

# linux/posix_acl_xattr.h
_ACL_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_UNDEFINED_ID = 0xFFFFFFFF


def check_account(account: str) -> str:
    """A login name we are willing to put on a command line (no option or shell tricks)."""
    if not isinstance(account, str) or not ACCOUNT_RE.match(account):
        raise ValueError(f"{account!r} is not a valid account name")
    return account


def sudo_argv(
    account: str | None, argv: Sequence[str], keep_env: Sequence[str] = ()
) -> list[str]:
    """``argv`` as ``account`` through sudo; unchanged when ``account`` is None.

    sudo resets the environment; ``keep_env`` (the admin's ``pass_environment``) asks it to
    keep those names. Root may always; another caller needs them in its sudoers
    ``env_keep`` (the Ansible role writes it).
    """
    if account is None:
        return list(argv)
    keep = [f"--preserve-env={','.join(keep_env)}"] if keep_env else []
    return ["sudo", "-n", *keep, "-u", check_account(account), "--", *argv]


def _acl(entries: Sequence[tuple[int, int, int]]) -> bytes:
    data = struct.pack("<I", _ACL_VERSION)
    for tag, perm, ident in sorted(entries):
        data += struct.pack("<HHI", tag, perm, ident)
    return data


def _grant_acl(path: str, uid: int, owner_uid: int, *, shared_read: bool) -> None:
    other = 5 if shared_read else 0
    group = 5 if shared_read else 0
    access = [
        (_USER_OBJ, 7, _UNDEFINED_ID),
        (_USER, 7, uid),
        (_GROUP_OBJ, group, _UNDEFINED_ID),
        (_MASK, 7, _UNDEFINED_ID),
        (_OTHER, other, _UNDEFINED_ID),
    ]
    default = [*access, (_USER, 7, owner_uid)] if owner_uid != uid else access
    try:
        os.setxattr(path, "system.posix_acl_access", _acl(access))
        os.setxattr(path, "system.posix_acl_default", _acl(default))
    except OSError as exc:
        raise UnsupportedFeature(
            f"cannot grant {path} to uid {uid}: the scratch file system must support POSIX "
            f"ACLs when jobs run as another account ({exc.strerror})"
        ) from exc


def hand_over_dir(path: str, account: str, *, shared_read: bool = False) -> None:
    """Make ``path`` (a directory we just created) the job account's, private to it."""
    entry = pwd.getpwnam(check_account(account))
    mode = 0o755 if shared_read else 0o700
    if os.geteuid() == 0:
        os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(path, mode)
        return
    os.chmod(path, mode)
    if entry.pw_uid != os.geteuid():
        _grant_acl(path, entry.pw_uid, os.geteuid(), shared_read=shared_read)


def hand_over_file(path: str, account: str) -> None:
    """As root, a staged input belongs to the job's account (it may rewrite its inputs)."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam(check_account(account))
        os.chown(path, entry.pw_uid, entry.pw_gid)
