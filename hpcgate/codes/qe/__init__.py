"""Quantum ESPRESSO (pw.x) support. Import-light, like the SIESTA package."""
