"""The hposcale service: a REST API over the study store and a live dashboard of trials,
sweeps and scaling laws, one FastAPI app (``hpo serve``)."""

from hpo.service.app import create_app

__all__ = ["create_app"]
