"""Shared helpers of the course "Deep Learning for Image Recognition with Keras".

Plumbing a learner can skip, and code a notebook has already shown, packaged for the
notebooks after it; one module per concern: ``config`` (mode, seeds, device; imports
nothing of ours), ``data`` and ``cifar_files`` (CIFAR-10, read safely), ``models``,
``training`` and ``runner`` (fit with resume), ``widgets`` (the panel), ``evaluation``,
``plots`` (draws what it is given), ``transfer``, ``capstone``, ``accelerate``,
``distribute`` and ``upload``. ``import helpers`` is cheap; the modules that build or
train models import Keras when they are imported.
"""

__version__ = "0.1.0"
