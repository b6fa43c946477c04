"""Config controlling hyperparameters for pre-training ELECTRA.

A thin, reference-compatible entry point: the implementation lives in
:mod:`electra_tf.pretraining.config`.
"""

from electra_tf.pretraining.config import PretrainingConfig  # noqa: F401

__all__ = ["PretrainingConfig"]
