"""Which codes exist: one :class:`~hpcgate.codes.plugin.CodePlugin` per code.

Adding a code is one entry here plus its package (``docs/validation.md``, "Adding a code
plugin"). Import-light on purpose: the in-job validator dispatches through this table.
"""

from __future__ import annotations

from hpcgate.codes.generic.prepare import prepare_generic
from hpcgate.codes.plugin import CodePlugin, Plugin
from hpcgate.codes.qe import markers as qe_markers
from hpcgate.codes.qe.prepare import prepare_qe
from hpcgate.codes.qe.recovery import QE_RECOVERY
from hpcgate.codes.qe.validate import QeAnalyzer
from hpcgate.codes.siesta import markers as siesta_markers
from hpcgate.codes.siesta.prepare import prepare_siesta
from hpcgate.codes.siesta.recovery import SIESTA_RECOVERY
from hpcgate.codes.siesta.validate import SiestaAnalyzer
from hpcgate.errors import InvalidInput

__all__ = ["PLUGINS", "get_plugin", "validating_plugins"]

PLUGINS: dict[str, CodePlugin] = {
    plugin.name: plugin
    for plugin in (
        Plugin(
            name="siesta",
            template="siesta.j2",
            default_main_input="input.fdf",
            # Not *.TSHS: SIESTA rebuilds H from the DM, and a stale TSHS could mislead TBtrans.
            default_inherit=("*.DM", "*.TSDE"),
            prepare=prepare_siesta,
            program="siesta",
            analyzer_factory=SiestaAnalyzer,
            find_banner=siesta_markers.banner_at,
            main_program=siesta_markers.is_main_program,
            recovery=SIESTA_RECOVERY,
        ),
        Plugin(
            name="qe",
            template="qe.j2",
            default_main_input="pw.in",
            default_inherit=("tmp",),
            prepare=prepare_qe,
            program="pw.x",
            aliases=("espresso", "quantum-espresso", "pw", "pw.x"),
            analyzer_factory=QeAnalyzer,
            find_banner=qe_markers.banner_at,
            recovery=QE_RECOVERY,
        ),
        Plugin(
            name="generic",
            template="generic.j2",
            default_main_input="",
            default_inherit=(),
            prepare=prepare_generic,
        ),
    )
}


def get_plugin(code: str) -> CodePlugin:
    try:
        return PLUGINS[code]
    except KeyError:
        raise InvalidInput(
            f"unknown code {code!r}: choose one of {', '.join(sorted(PLUGINS))}"
        ) from None


def validating_plugins() -> list[CodePlugin]:
    """The plugins whose runs ``hpcgate validate`` can judge, in registry order."""
    return [p for p in PLUGINS.values() if p.validates]
