"""Built-in Quantum ESPRESSO (pw.x) analyses (see docs/analyses.md)."""
