"""Code-specific knowledge (SIESTA/TranSIESTA, Quantum ESPRESSO).

Only light modules are imported here: validation runs inside batch jobs and must not
pull in sisl or numpy.
"""

from hpcgate.codes.validation import ValidationReport, Verdict, validate_path

__all__ = ["ValidationReport", "Verdict", "validate_path"]
