"""SIESTA / TranSIESTA / TBtrans support.

Keep this package import-light: ``hpcgate.codes.siesta.validate`` runs at the end of
batch jobs and must not import sisl (150 MB RSS, ~1 s).
"""
