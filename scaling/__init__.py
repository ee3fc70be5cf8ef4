"""Scaling laws for the optimal learning rate and batch size: each (N, D) cell's optimum from
a sweep, robust power-law fits with bootstrap intervals and leave-largest-scale-out
validation, the published laws (Step Law, DeepSeek LLM), and recommendations for a target."""

from scaling.api import fit
from scaling.errors import ScalingError
from scaling.fitting import ScalingFit, fit_runs, optima_of
from scaling.laws import FORMS, Law, PowerLaw
from scaling.optimum import CellOptimum, find_optimum
from scaling.published import PUBLISHED_LAWS
from scaling.recommend import Recommendation, recommend
from scaling.runs import Run, read_csv, runs_from_sweep

__all__ = [
    "FORMS",
    "PUBLISHED_LAWS",
    "CellOptimum",
    "Law",
    "PowerLaw",
    "Recommendation",
    "Run",
    "ScalingError",
    "ScalingFit",
    "find_optimum",
    "fit",
    "fit_runs",
    "optima_of",
    "read_csv",
    "recommend",
    "runs_from_sweep",
]
