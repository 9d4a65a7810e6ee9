"""Robustness: perturbed texts, adversarial training in embedding space, augmentation on the fly."""
