"""Bridges from other tools' tuning loops to hposcale's algorithms and study store.

Each bridge lives in its own module and imports its tool only when that module is imported
(``import hpo`` never imports Ray): ``hpo.integrations.ray_tune`` gives Ray Tune a searcher
and a scheduler backed by a study.
"""
