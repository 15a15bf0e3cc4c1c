"""Classifiers behind one small interface (:class:`models.base.Classifier`)."""

from models.base import BatchResult, Classifier
from models.loading import load_classifier

__all__ = ["BatchResult", "Classifier", "load_classifier"]
