"""Fine-tuning on downstream tasks: task readers, heads, metrics."""
