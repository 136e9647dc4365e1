"""Use-cases. Each owns its transaction boundaries; routes, CLI and ticks call these."""
