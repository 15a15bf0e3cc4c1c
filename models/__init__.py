"""Classifiers behind one small interface (:class:`models.base.Classifier`); model cards as specs
(:mod:`models.spec`, presets in ``models/presets``), served by :class:`models.classifier.SpecClassifier`."""

from models.base import BatchResult, Classifier
from models.loading import load_classifier
from models.spec import ModelSpec, load_spec

__all__ = ["BatchResult", "Classifier", "ModelSpec", "load_classifier", "load_spec"]
