"""Fit: fastai fine-tuning (the only fastai user), head-only logistic heads, cross-validation, multi-process runs."""
