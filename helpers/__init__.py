"""Shared helpers of the course "Deep Learning for Image Recognition with Keras".

One module per concern; each is introduced by the notebook that first needs it:
``config`` (mode, seeds, device), ``data`` (CIFAR-10), and later models,
training, evaluation, plots and widgets. Importing this package is cheap: the
deep-learning libraries load only when a function needs them.
"""

__version__ = "0.1.0"
