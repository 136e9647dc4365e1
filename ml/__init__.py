"""The ML-API: trained models as containers on a Docker engine (docs/ml-api.md, docs/models.md).

``ml.api.create_ml_app`` is the FastAPI app behind ``hpcgate ml-api``; ``ml.manager`` the
supervisor (lifecycle, recovery from labels, restarts); ``ml.engine`` the container seam;
``ml.health`` the /ping watchdog; ``ml.reporting`` the main API client; ``ml.example_model``
a useful model (pw.x SCF non-convergence risk) with its data, training and image.
"""
