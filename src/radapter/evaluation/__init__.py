"""Evaluation: classification under shift, α sweeps."""

from .classify import evaluate_classifier, summarize_sets

__all__ = ["evaluate_classifier", "summarize_sets"]
