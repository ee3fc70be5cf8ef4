"""The search-space language: parameter types, conditions, fidelity, validation, sampling and
unit-cube encoding. Pure Python: no database, no torch. (Built by the search-spaces issue.)"""
