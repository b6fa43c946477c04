"""ELECTRA output heads: replaced-token detection and (tied) masked LM."""

import keras
import tensorflow as tf

from electra_tf.modeling.base import ConfigLayer
from electra_tf.modeling.transformer import dense


def gather_positions(sequence, positions):
    """Picks `positions` [B, P] (int) out of `sequence` [B, T, D] -> [B, P, D].

    Lets the MLM head compute vocabulary logits only at the masked positions.
    """
    return tf.gather(sequence, positions, batch_dims=1)


def tied_logits(hidden_states, table):
    """`hidden_states` [..., E] x `table` [V, E]^T -> [..., V], as one 2-D matmul.

    A rank-3 x rank-2 `tf.matmul` is a broadcast batch matmul whose gradient for the table
    materializes one [V, E] product per batch row, then sums them ([32, 21128, 312] floats,
    0.8 GB, for ELECTRA-tiny's generator); flattening the leading axes makes that gradient one
    [E, N] x [N, V] matmul. transpose_b avoids materializing the transpose.
    """
    flat = tf.reshape(hidden_states, [-1, hidden_states.shape[-1]])  # [N, E]
    logits = tf.matmul(flat, table, transpose_b=True)  # [N, V]
    shape = hidden_states.shape[:-1].as_list() + [table.shape[0]]
    if None in shape:
        shape = tf.concat([tf.shape(hidden_states)[:-1], tf.shape(table)[:1]], 0)
    return tf.reshape(logits, shape)


@keras.saving.register_keras_serializable(package="electra_tf")
class DiscriminatorHead(ConfigLayer):
    """Per-token "was this token replaced?" logits (`discriminator_predictions`).

    Dense(H, activation) then Dense(1), with H the input width. As in the reference, the first
    starts truncated normal (initializer_range) and the second Glorot uniform.
    [B, T, H] -> float32 logits [B, T].

    Weights: `dense/{kernel [H, H], bias [H]}`,
    `dense_prediction/{kernel [H, 1], bias [1]}`.

    Example:

    >>> DiscriminatorHead()(tf.ones((2, 5, 16))).shape
    TensorShape([2, 5])
    """

    def __init__(self, activation="gelu", initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.remember(locals())

    def build(self, input_shape):
        # input_shape: [B, T, H]
        hidden_size = input_shape[-1]
        self.dense = dense(
            hidden_size, self.initializer_range, self.dtype_policy, "dense", self.activation
        )
        self.dense_prediction = keras.layers.Dense(
            1,
            kernel_initializer="glorot_uniform",  # the reference's tf.layers.dense default
            dtype=self.dtype_policy,
            name="dense_prediction",
        )
        self.dense.build(input_shape)
        self.dense_prediction.build(input_shape)
        self.built = True

    def call(self, sequence_output):
        # sequence_output: [B, T, H]
        logits = self.dense_prediction(self.dense(sequence_output))  # [B, T, 1]
        return tf.cast(tf.squeeze(logits, -1), tf.float32)  # [B, T]


class TiedHead(ConfigLayer):
    """A head whose output weights are the `embeddings` layer it is given (tied). Its config holds
    the embeddings by value: a deserialized head owns an untied copy of the table's configuration,
    not the shared table."""

    def get_config(self):
        config = super().get_config()
        config["embeddings"] = keras.saving.serialize_keras_object(self.embeddings)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["embeddings"] = keras.saving.deserialize_keras_object(config["embeddings"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="electra_tf")
class MaskedLMHead(TiedHead):
    """Vocabulary logits tied to the word embeddings (`generator_predictions`).

    Dense(E, activation), LayerNorm, then `x @ word_embeddings^T + output_bias`.
    [B, P, H] -> float32 logits [B, P, vocab]. Feed it `gather_positions(...)`
    of the encoder output to score only masked positions.

    Args:
      embeddings: the `Embeddings` whose `word_embeddings` [vocab, E] are the
        output weights; gradients of the head flow into that table.

    Weights (besides the tied table): `dense/{kernel [H, E], bias [E]}`,
    `layer_norm/{gamma,beta}` [E], `output_bias` [vocab] (kept in float32).

    Example:

    >>> from electra_tf.modeling import Embeddings
    >>> embeddings = Embeddings(vocab_size=30, embedding_size=8, max_position_embeddings=16)
    >>> embeddings.build()
    >>> head = MaskedLMHead(embeddings)
    >>> head(gather_positions(tf.ones((2, 5, 16)), tf.constant([[1, 3], [0, 2]]))).shape
    TensorShape([2, 2, 30])
    """

    def __init__(
        self,
        embeddings,
        activation="gelu",
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.remember(locals())

    def build(self, input_shape):
        # input_shape: [B, P, H]
        embedding_size = self.embeddings.embedding_size
        self.dense = dense(
            embedding_size, self.initializer_range, self.dtype_policy, "dense", self.activation
        )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_eps, dtype=self.dtype_policy, name="layer_norm"
        )
        self.dense.build(input_shape)
        self.layer_norm.build(tuple(input_shape[:-1]) + (embedding_size,))
        # Added to float32 logits, so it is never cast down.
        self.output_bias = self.add_weight(
            shape=(self.embeddings.vocab_size,),
            initializer="zeros",
            autocast=False,
            name="output_bias",
        )
        if not self.embeddings.built:
            self.embeddings.build()
        self.built = True

    def call(self, hidden_states):
        # hidden_states: [B, P, H]
        hidden_states = self.layer_norm(self.dense(hidden_states))  # [B, P, E]
        logits = tied_logits(hidden_states, self.embeddings.word_embeddings)  # [B, P, V]
        return tf.cast(logits, tf.float32) + self.output_bias
