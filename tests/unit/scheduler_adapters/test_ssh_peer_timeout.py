"""Which transport deaths forbid the in-call reconnect of the SSH runner.

A peer the kernel gave up on (TCP_USER_TIMEOUT → ETIMEDOUT) is unreachable: reconnecting
in the same call only waits out another timeout. A reset or an EOF (sshd restarted) is
worth the one reconnect.
"""

from __future__ import annotations

import errno

import paramiko

from scheduler_adapters.runners.ssh_connection import Dropped, peer_timed_out


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except BaseException as caught:
        return caught


def test_etimedout_is_a_dead_peer() -> None:
    assert peer_timed_out(OSError(errno.ETIMEDOUT, "Connection timed out"))


def test_etimedout_behind_our_wrapper_is_found() -> None:
    exc = _chained(Dropped("transport died"), OSError(errno.ETIMEDOUT, "timed out"))
    assert peer_timed_out(exc)


def test_reset_eof_and_refusals_are_not() -> None:
    assert not peer_timed_out(OSError(errno.ECONNRESET, "reset"))
    assert not peer_timed_out(_chained(Dropped("eof"), EOFError()))
    assert not peer_timed_out(paramiko.SSHException("Unable to open channel."))
    assert not peer_timed_out(None)


def test_a_socket_timeout_without_errno_is_not() -> None:
    # socket.timeout (a read deadline of ours) has no errno: the peer may be fine
    assert not peer_timed_out(TimeoutError("timed out"))
