"""ELECTRA / masked-LM pre-training: config, in-graph masking, the objective, the input pipeline."""
