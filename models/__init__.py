"""Pneumonia classifiers: architectures, the shared preprocessing, training, evaluation and weights.

Import from the submodules (``models.registry``, ``models.weights``, …): this package itself imports
nothing, so a light import such as ``models.errors`` (the CLI's ``--help``) does not load torch.
"""
