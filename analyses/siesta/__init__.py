"""Built-in SIESTA/TranSIESTA/TBtrans analyses (see docs/analyses.md)."""
