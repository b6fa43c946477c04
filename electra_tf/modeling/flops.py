"""Model FLOPs of BERT/ELECTRA encoder shapes, for throughput-to-utilisation figures (one owner:
the training logs and the benchmarks use these).

Counted: matmul FLOPs (2 per multiply-add) of the dense layers and of attention; not counted:
embedding lookups, softmax, LayerNorm, activations, biases. Training is 3x the forward pass
(the backward pass computes two matmuls per forward one).
"""

from electra_tf.modeling.config import EncoderConfig


def encoder_flops_per_token(config, seq_length):
    """Forward matmul FLOPs of one token through an encoder of `config`'s shapes at `seq_length`.

    Per layer: the query, key, value and output projections (4 H^2 multiply-adds), the
    feed-forward (2 H I) and attention's scores and weighted sum (2 T H); plus the embedding
    projection (E H) when the embedding size E differs from the hidden size H.
    """
    h, i = config.hidden_size, config.intermediate_size
    per_layer = 4 * h * h + 2 * h * i + 2 * seq_length * h
    projection = config.embedding_size * h if config.embedding_size != h else 0
    return 2 * (config.num_hidden_layers * per_layer + projection)


def electra_train_flops_per_token(discriminator, generator, seq_length, lm_positions):
    """Training FLOPs (forward + backward) of one pre-training token: the discriminator and its
    head (dense H x H, then H x 1 per token), the generator (None: none) and its masked-LM head at
    `lm_positions` positions per sequence (dense H_gen x E, then the tied E x vocab output).
    0.0 when a network is not a BERT-shaped `EncoderConfig` (MobileBERT: not counted)."""
    configs = [discriminator] + ([generator] if generator is not None else [])
    if not all(isinstance(c, EncoderConfig) for c in configs):
        return 0.0
    h = discriminator.hidden_size
    forward = encoder_flops_per_token(discriminator, seq_length) + 2 * h * (h + 1)
    if generator is not None:
        forward += encoder_flops_per_token(generator, seq_length)
        e = generator.embedding_size
        head = 2 * (generator.hidden_size * e + e * generator.vocab_size)
        forward += lm_positions / seq_length * head
    return 3 * forward


def finetuning_train_flops_per_example(config, seq_length):
    """Training FLOPs (forward + backward) of one fine-tuning example of `seq_length` tokens (the
    task heads' few FLOPs are not counted); 0.0 for configs that are not an `EncoderConfig`."""
    if not isinstance(config, EncoderConfig):
        return 0.0
    return 3 * seq_length * encoder_flops_per_token(config, seq_length)
