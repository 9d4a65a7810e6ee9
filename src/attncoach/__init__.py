"""attncoach: train attention models whose structure and hyperparameters adapt while they train."""

__version__ = "0.1.0"
