"""The coach: policies that adapt a run's hyperparameters from its training signals."""
