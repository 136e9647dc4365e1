"""hpcgate: automate numerical calculations on HPC clusters, with analyses and ML predictions."""

__version__ = "0.1.0"
