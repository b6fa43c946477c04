"""Bundled ELECTRA model-size descriptions (JSON files), installed as electra_tf.model_sizes."""
