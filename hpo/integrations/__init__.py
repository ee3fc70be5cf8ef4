"""Bridges from other tools' training and tuning loops to hposcale's algorithms and study store.

Each bridge lives in its own module and imports its tool only when that module is imported
(``import hpo`` never imports Ray, transformers or Lightning):

- ``hpo.integrations.ray_tune`` gives Ray Tune a searcher and a scheduler backed by a study.
- ``hpo.integrations.huggingface`` and ``hpo.integrations.lightning`` give a Hugging Face or
  Lightning ``Trainer`` a callback that reports each evaluation of a command objective's
  script and stops it when the study prunes the trial (extras ``huggingface``, ``lightning``).
"""
