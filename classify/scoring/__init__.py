"""Scores from probabilities (pure numpy): metrics, per-clip pooling, ensembles, suspect labels."""
