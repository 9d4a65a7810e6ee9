"""``attncoach tune``: hyperparameter search over coached runs (Optuna), one run directory per trial.

:mod:`attncoach.tune.space` reads ``tune.space``; :mod:`attncoach.tune.study` runs the study.
"""
