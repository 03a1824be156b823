"""Shared helpers of the course "Deep Learning for Image Recognition with Keras": plumbing a
learner can skip, and code a notebook has shown, packaged for the notebooks after it. ``config``
imports nothing of ours; ``import helpers`` is cheap."""

__version__ = "0.1.0"
