"""Training machinery shared by pre-training and fine-tuning: optimizer, strategy, loop."""
