"""Checkpoint conversion: reference TF1 checkpoints, Hugging Face, SavedModel."""
