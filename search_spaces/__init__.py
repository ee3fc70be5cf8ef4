"""The search-space language: parameter types, conditions, fidelity, validation, sampling,
unit-cube encoding and configuration hashing, plus the built-in spaces. Pure Python and numpy:
no database, no torch, so a space can be checked anywhere."""

from search_spaces.builtin import BUILTIN_SPACES, builtin_spaces, get_builtin
from search_spaces.errors import SpaceError
from search_spaces.params import Categorical, Fixed, Float, Int, Param
from search_spaces.space import Fidelity, SearchSpace, config_hash, load_space

__all__ = [
    "BUILTIN_SPACES",
    "Categorical",
    "Fidelity",
    "Fixed",
    "Float",
    "Int",
    "Param",
    "SearchSpace",
    "SpaceError",
    "builtin_spaces",
    "config_hash",
    "get_builtin",
    "load_space",
]
