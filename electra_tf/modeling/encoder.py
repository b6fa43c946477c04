"""BERT/ELECTRA transformer encoder: embeddings, optional projection, blocks."""

import keras
import tensorflow as tf

from electra_tf.modeling.config import EncoderConfig
from electra_tf.modeling.embeddings import Embeddings
from electra_tf.modeling.transformer import TransformerBlock

ATTENTION_DIRECTIONS = (None, "ltr", "rtl")


@keras.saving.register_keras_serializable(package="electra_tf")
class TransformerEncoder(keras.layers.Layer):
    """The ELECTRA/BERT encoder (`electra/...` in the reference checkpoints).

    Args:
      config: an `EncoderConfig` (or its dict form).
      embeddings: an `Embeddings` to use instead of making one, e.g. the
        discriminator's, so that ELECTRA's generator shares it. Its width must
        be `config.embedding_size`.
      attention_direction: None (bidirectional), "ltr" (token t attends to tokens <= t) or
        "rtl" (tokens >= t): the towers of Electric's two-tower cloze generator, as the
        reference's `BertModel(ltr=True / rtl=True)`, whose causal mask multiplies the padding
        mask.

    When the embedding width E differs from `hidden_size` H, a per-encoder
    Dense `embeddings_project` (E -> H) follows the embeddings, as in ELECTRA
    where generator and discriminator each have their own; like the reference's
    `tf.layers.dense` it starts Glorot-uniform, not truncated normal.

    Weights: `embeddings/...` (see `Embeddings`), `embeddings_project/{kernel
    [E, H], bias [H]}` when E != H, and `layer_{i}/...` (see `TransformerBlock`).

    `call(inputs)` takes a dict of [B, T] int tensors `input_ids`, `input_mask`
    (1 = real token) and `segment_ids` (the last two optional) and returns:
      sequence_output: [B, T, H], the last layer's output.
      pooled_output: [B, H], `sequence_output[:, 0]` (ELECTRA has no pooler).
      embedding_output: [B, T, H], the input of the first block.
      encoder_outputs: list of every block's output, [B, T, H] each.

    Example:

    >>> from electra_tf.modeling import EncoderConfig
    >>> encoder = TransformerEncoder(EncoderConfig(vocab_size=30, hidden_size=16,
    ...     num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, embedding_size=8))
    >>> outputs = encoder({"input_ids": tf.ones((2, 5), tf.int32)})
    >>> outputs["sequence_output"].shape, len(outputs["encoder_outputs"])
    (TensorShape([2, 5, 16]), 2)
    """

    def __init__(self, config, embeddings=None, attention_direction=None, **kwargs):
        super().__init__(**kwargs)
        if attention_direction not in ATTENTION_DIRECTIONS:
            raise ValueError(
                f"attention_direction must be one of {ATTENTION_DIRECTIONS}, "
                f"got {attention_direction!r}."
            )
        self.attention_direction = attention_direction
        if isinstance(config, dict):
            config = EncoderConfig.from_dict(config)
        self.config = config
        if embeddings is None:
            embeddings = Embeddings.from_encoder_config(
                config, dtype=self.dtype_policy, name="embeddings"
            )
        elif embeddings.embedding_size != config.embedding_size:
            raise ValueError(
                f"The shared embeddings are {embeddings.embedding_size} wide but "
                f"config.embedding_size is {config.embedding_size}."
            )
        self.embeddings = embeddings
        self.embeddings_project = None
        if config.embedding_size != config.hidden_size:
            self.embeddings_project = keras.layers.Dense(
                config.hidden_size,
                kernel_initializer="glorot_uniform",  # the reference's tf.layers.dense default
                dtype=self.dtype_policy,
                name="embeddings_project",
            )
        self.blocks = [
            TransformerBlock(
                **config.layer_kwargs(TransformerBlock), dtype=self.dtype_policy, name=f"layer_{i}"
            )
            for i in range(config.num_hidden_layers)
        ]

    def build(self, inputs_shape=None):
        # Shapes are known from the config; inputs_shape may be omitted.
        if not self.embeddings.built:
            self.embeddings.build()
        if self.embeddings_project is not None:
            self.embeddings_project.build((None, None, self.config.embedding_size))
        for block in self.blocks:
            block.build((None, None, self.config.hidden_size))
        self.built = True

    def call(self, inputs, training=None):
        input_mask = inputs.get("input_mask")
        hidden_states = self.embeddings(
            inputs["input_ids"], inputs.get("segment_ids"), training=training
        )  # [B, T, E]
        if self.embeddings_project is not None:
            hidden_states = self.embeddings_project(hidden_states)  # [B, T, H]
        embedding_output = hidden_states
        if self.attention_direction is not None:
            input_mask = self._directional_mask(inputs["input_ids"], input_mask)
        encoder_outputs = []
        for block in self.blocks:
            hidden_states = block(hidden_states, input_mask=input_mask, training=training)
            encoder_outputs.append(hidden_states)
        return {
            "sequence_output": hidden_states,
            "pooled_output": hidden_states[:, 0],
            "embedding_output": embedding_output,
            "encoder_outputs": encoder_outputs,
        }

    def _directional_mask(self, input_ids, input_mask):
        """[B, T, T]: query t sees key s if s is real and on its side (s <= t for "ltr")."""
        length = tf.shape(input_ids)[1]
        if input_mask is None:
            input_mask = tf.ones_like(input_ids)
        ones = tf.ones([length, length], tf.float32)
        if self.attention_direction == "ltr":
            causal = tf.linalg.band_part(ones, -1, 0)  # lower triangle, diagonal included
        else:
            causal = tf.linalg.band_part(ones, 0, -1)  # upper triangle, diagonal included
        return tf.cast(input_mask, tf.float32)[:, None, :] * causal[None]

    def get_config(self):
        # A shared `embeddings` is not serialized: `from_config` makes its own.
        config = super().get_config()
        config["config"] = self.config.to_dict()
        config["attention_direction"] = self.attention_direction
        return config
