"""electra_tf: ELECTRA / BERT pre-training and fine-tuning on TensorFlow 2 and Keras 3."""

__version__ = "0.1.0"
