"""Evaluation metrics: classification under shift (top-1/top-5), image–text retrieval (recall@K, ranks)."""

from .classify import evaluate_classifier, summarize_sets
from .retrieval import retrieval_metrics, retrieval_ranks

__all__ = ["evaluate_classifier", "retrieval_metrics", "retrieval_ranks", "summarize_sets"]
