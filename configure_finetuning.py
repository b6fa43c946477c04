"""Config controlling hyperparameters for fine-tuning ELECTRA.

A thin, reference-compatible entry point: the implementation lives in
:mod:`electra_tf.finetuning.config`.
"""

from electra_tf.finetuning.config import FinetuningConfig  # noqa: F401

__all__ = ["FinetuningConfig"]
