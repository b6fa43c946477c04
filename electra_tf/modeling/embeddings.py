"""BERT/ELECTRA input embeddings: word + position + token type, LayerNorm, dropout."""

import keras
import tensorflow as tf

from electra_tf.modeling.base import ConfigLayer
from electra_tf.modeling.config import EncoderConfig
from electra_tf.modeling.dropout import Dropout


def truncated_normal(stddev: float) -> keras.initializers.Initializer:
    """BERT's weight initializer (`create_initializer`): truncated at 2 stddev."""
    return keras.initializers.TruncatedNormal(stddev=stddev)


def sequence_length(input_ids, max_positions):
    """T of [B, T] `input_ids`: static when known (then at most `max_positions`), else dynamic."""
    length = input_ids.shape[1]
    if length is None:
        return tf.shape(input_ids)[1]
    if length > max_positions:
        raise ValueError(
            f"Sequences of {length} tokens are longer than max_position_embeddings "
            f"({max_positions})."
        )
    return length


@keras.saving.register_keras_serializable(package="electra_tf")
class Embeddings(ConfigLayer):
    """Sums word, position and token-type embeddings, then LayerNorm and dropout.

    One instance can be called by several encoders: ELECTRA's generator and
    discriminator share these tables and the LayerNorm. `word_embeddings` is
    public because the masked-LM output layer is tied to it.

    Weights: `word_embeddings` [vocab, E], `position_embeddings` [max_pos, E],
    `token_type_embeddings` [type_vocab, E], `layer_norm/{gamma,beta}` [E].

    Example:

    >>> embeddings = Embeddings(vocab_size=30, embedding_size=8, max_position_embeddings=16)
    >>> embeddings(tf.ones((2, 5), tf.int32), tf.zeros((2, 5), tf.int32)).shape
    TensorShape([2, 5, 8])
    """

    def __init__(
        self,
        vocab_size,
        embedding_size,
        max_position_embeddings=512,
        type_vocab_size=2,
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        dropout_rate=0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.remember(locals())
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=self.dtype_policy, name="layer_norm"
        )
        self.dropout = Dropout(dropout_rate, dtype=self.dtype_policy, name="dropout")

    @classmethod
    def from_encoder_config(cls, config: EncoderConfig, **kwargs):
        """The embeddings an encoder with `config` would make for itself."""
        return cls(**config.layer_kwargs(cls), **kwargs)

    def build(self, input_shape=None):
        # Weight shapes do not depend on the input, so `build()` may be called
        # with no argument to create the tables before any data is seen.
        self.word_embeddings = self.add_weight(
            shape=(self.vocab_size, self.embedding_size),
            initializer=truncated_normal(self.initializer_range),
            name="word_embeddings",
        )
        self.position_embeddings = self.add_weight(
            shape=(self.max_position_embeddings, self.embedding_size),
            initializer=truncated_normal(self.initializer_range),
            name="position_embeddings",
        )
        self.token_type_embeddings = self.add_weight(
            shape=(self.type_vocab_size, self.embedding_size),
            initializer=truncated_normal(self.initializer_range),
            name="token_type_embeddings",
        )
        self.layer_norm.build((None, None, self.embedding_size))
        self.built = True

    def call(self, input_ids, segment_ids=None, training=None):
        # input_ids, segment_ids: [B, T] int; segment_ids=None means all zeros.
        seq_length = sequence_length(input_ids, self.max_position_embeddings)
        embeddings = tf.gather(self.word_embeddings, input_ids)  # [B, T, E]
        # Positions are 0..T-1 for every example: a slice, broadcast over B.
        embeddings += self.position_embeddings[:seq_length][None]  # [1, T, E]
        if segment_ids is None:
            embeddings += self.token_type_embeddings[0]  # [E]
        else:
            embeddings += tf.gather(self.token_type_embeddings, segment_ids)
        embeddings = self.layer_norm(embeddings)
        return self.dropout(embeddings, training=training)  # [B, T, E]
