"""MobileBERT: bottleneck encoders (and plain BERT teachers) by the original config names.

The original (google-research/mobilebert, ymcui/Chinese-MobileBERT) is a BERT whose every block
can squeeze its input through a narrow "intra-bottleneck", run several feed-forward networks and
use an elementwise scale + shift (`no_norm`) instead of LayerNorm. With every option off, the
same code is a post-LayerNorm BERT, which is how distillation teachers are read here.

Variable paths map one to one to the original checkpoint names (`bert/...` for the encoder,
`cls/predictions/...` for the head), NORM being `FakeLayerNorm` (no_norm) or `LayerNorm`:

| ours (inside the encoder / the head)         | original                                    |
| -------------------------------------------- | ------------------------------------------- |
| embeddings/{word,position,token_type}_embeddings | bert/embeddings/... (same)              |
| embeddings/embedding_transformation/*        | bert/embeddings/embedding_transformation/*  |
| embeddings/norm/*                            | bert/embeddings/NORM/*                      |
| layer_i/bottleneck_input[_norm]/*            | bert/encoder/layer_i/bottleneck/input/{dense,NORM}/* |
| layer_i/bottleneck_attention[_norm]/*        | .../bottleneck/attention/{dense,NORM}/*     |
| layer_i/attention/{query,key,value}/*        | .../attention/self/{query,key,value}/*      |
| layer_i/attention/output/*, attention_norm/* | .../attention/output/{dense,NORM}/*         |
| layer_i/ffn_layer_j/{intermediate,output,output_norm}/* | .../ffn_layer_j/{intermediate/dense,output/dense,output/NORM}/* |
| layer_i/{intermediate,output,output_norm}/*  | .../{intermediate/dense,output/dense,output/NORM}/* |
| layer_i/output_bottleneck[_norm]/*           | .../output/bottleneck/{dense,NORM}/*        |
| pooler/*                                     | bert/pooler/dense/*                         |
| head: dense/*, layer_norm/*                  | cls/predictions/transform/{dense,LayerNorm}/* |
| head: output_bias, extra_output_weights      | cls/predictions/(same)                      |

Attention kernels are stored head-split ([in, heads, head_size], output [heads, head_size, out])
as in `SelfAttention`; `electra_tf.conversion.mobilebert` does the reshape and the renaming.
"""

import dataclasses
import math

import keras
import tensorflow as tf

from electra_tf.modeling import heads, sizes
from electra_tf.modeling.base import ConfigLayer
from electra_tf.modeling.config import BertConfig
from electra_tf.modeling.dropout import Dropout
from electra_tf.modeling.embeddings import sequence_length, truncated_normal
from electra_tf.modeling.heads import TiedHead, gather_positions
from electra_tf.modeling.transformer import (
    dense,
    einsum_projection,
    feed_forward,
    get_activation,
)

# Added to the attention scores of padded keys, as the original (not its quantization-friendly
# -6 variant): exp() of it is 0 in float32.
_MASK_ADDER = -10000.0
NORMALIZATION_TYPES = ("no_norm", "layer_norm")


@dataclasses.dataclass
class MobileBertConfig(BertConfig):
    """Hyper-parameters of a MobileBERT (or plain BERT) encoder, named as the original's config.

    Every key of the original `bert_config.json` is a field with the original's default (BERT's
    from `BertConfig`, 16 token types as MobileBERT's), so a published MobileBERT or BERT config
    loads without renaming. `embedding_size` and
    `intra_bottleneck_size` default to `hidden_size`. `hidden_act` uses this package's names
    (`get_activation`): the original's "gelu" is the tanh approximation, "gelu_new" here;
    `electra_tf.conversion.mobilebert.read_bert_config` translates it.

    Args:
      vocab_size: rows of the word embedding table.
      hidden_size: width H of the block inputs and outputs (the "inter-block" width).
      num_hidden_layers: number of blocks.
      num_attention_heads: heads; must divide the attention width (the bottleneck when on).
      intermediate_size: width of every feed-forward network.
      hidden_act: feed-forward and MLM-transform activation ("relu", "gelu", "gelu_new"...).
      hidden_dropout_prob: dropout after embeddings and block outputs.
      attention_probs_dropout_prob: dropout of the attention probabilities.
      max_position_embeddings: rows of the position table.
      type_vocab_size: rows of the token-type table.
      initializer_range: stddev of the truncated-normal initializers.
      embedding_size: width E of the word embeddings (None: H).
      trigram_input: concatenate the next, current and previous token embeddings [3E], then a
        dense to H.
      use_bottleneck: squeeze each block through `intra_bottleneck_size`.
      intra_bottleneck_size: bottleneck width B (None: H).
      use_bottleneck_attention: queries, keys and values from the input bottleneck.
      key_query_shared_bottleneck: queries and keys from a second, shared bottleneck; values
        from the block input.
      num_feedforward_networks: stacked FFNs per block.
      normalization_type: "no_norm" (x * gamma + beta) or "layer_norm".
      classifier_activation: pooled output = tanh(dense(first token)) when true, else the first
        token.
      layer_norm_eps: LayerNorm epsilon (the original's 1e-12).

    Example:
    >>> config = MobileBertConfig(vocab_size=100, hidden_size=32, num_attention_heads=2,
    ...     use_bottleneck=True, intra_bottleneck_size=8, normalization_type="no_norm")
    >>> config.true_hidden_size
    8
    """

    type_vocab_size: int = 16
    embedding_size: int | None = None
    trigram_input: bool = False
    use_bottleneck: bool = False
    intra_bottleneck_size: int | None = None
    use_bottleneck_attention: bool = False
    key_query_shared_bottleneck: bool = False
    num_feedforward_networks: int = 1
    normalization_type: str = "layer_norm"
    classifier_activation: bool = True

    def __post_init__(self):
        if self.embedding_size is None:
            self.embedding_size = self.hidden_size
        if self.intra_bottleneck_size is None:
            self.intra_bottleneck_size = self.hidden_size
        if self.normalization_type not in NORMALIZATION_TYPES:
            raise ValueError(
                f"normalization_type {self.normalization_type!r} is not one of "
                f"{', '.join(NORMALIZATION_TYPES)}."
            )
        if self.embedding_size > self.hidden_size:
            raise ValueError(
                f"embedding_size ({self.embedding_size}) may not exceed hidden_size "
                f"({self.hidden_size}): the MLM head pads the embedding table up to hidden_size."
            )
        if not self.use_bottleneck and (
            self.use_bottleneck_attention or self.key_query_shared_bottleneck
        ):
            raise ValueError(
                "use_bottleneck_attention / key_query_shared_bottleneck need use_bottleneck."
            )
        if self.use_bottleneck_attention and self.key_query_shared_bottleneck:
            raise ValueError(
                "use_bottleneck_attention and key_query_shared_bottleneck exclude each other "
                "(the original would silently ignore key_query_shared_bottleneck)."
            )
        if self.num_feedforward_networks < 1:
            raise ValueError(
                f"num_feedforward_networks must be >= 1, got {self.num_feedforward_networks}."
            )
        if self.true_hidden_size % self.num_attention_heads:
            raise ValueError(
                f"The attention width ({self.true_hidden_size}) is not a multiple of "
                f"num_attention_heads ({self.num_attention_heads})."
            )
        get_activation(self.hidden_act)  # unknown names raise here, not at build time

    @property
    def true_hidden_size(self) -> int:
        """Width inside a block: the bottleneck when on, else `hidden_size`."""
        return self.intra_bottleneck_size if self.use_bottleneck else self.hidden_size


def load_mobilebert_size(model_size, **overrides):
    """A `MobileBertConfig` from a size file: a name such as "mobilebert_base_f2" or a JSON path
    (any `tf.io.gfile` path).

    The file holds `MobileBertConfig` keys and a "description"; `overrides` replace keys.
    Read by `modeling.sizes.load_model_size`, like every size file.

    Example:
    >>> load_mobilebert_size("mobilebert_tiny").intra_bottleneck_size
    16
    """
    values = dict(sizes.load_model_size(model_size))
    source = model_size
    values.pop("description", None)
    values.update(overrides)
    try:
        return MobileBertConfig.from_dict(values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: {e}") from e


class ConfiguredLayer(keras.layers.Layer):
    """A layer built from a `MobileBertConfig` (or its dict form, which `get_config` writes)."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = MobileBertConfig.from_dict(config)
        self.config = config

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict()}


@keras.saving.register_keras_serializable(package="electra_tf")
class NoNorm(keras.layers.Layer):
    """MobileBERT's `no_norm` "normalization": an elementwise `x * gamma + beta`.

    Weights: `gamma` [D] (ones), `beta` [D] (zeros), D the input's last axis.

    Example:
    >>> norm = NoNorm()
    >>> norm(tf.ones((2, 3, 4))).shape
    TensorShape([2, 3, 4])
    """

    def build(self, input_shape):
        # input_shape: [..., D]
        width = input_shape[-1]
        self.gamma = self.add_weight(shape=(width,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(width,), initializer="zeros", name="beta")
        self.built = True

    def call(self, inputs):
        return inputs * self.gamma + self.beta  # [..., D]

    def compute_output_shape(self, input_shape):
        return input_shape


def make_norm(normalization_type, layer_norm_eps=1e-12, **kwargs):
    """A `NoNorm` or a `keras.layers.LayerNormalization` for `normalization_type`."""
    if normalization_type == "no_norm":
        return NoNorm(**kwargs)
    if normalization_type == "layer_norm":
        return keras.layers.LayerNormalization(epsilon=layer_norm_eps, **kwargs)
    raise ValueError(
        f"normalization_type {normalization_type!r} is not one of {', '.join(NORMALIZATION_TYPES)}."
    )


@keras.saving.register_keras_serializable(package="electra_tf")
class MobileBertEmbeddings(ConfiguredLayer):
    """Word embeddings (optionally trigram, projected to H) + position + token type, norm, dropout.

    With `trigram_input`, each position sees [next token, token, previous token] embeddings
    (zeros past the ends), [B, T, 3E]; a dense `embedding_transformation` maps them (or plain
    [B, T, E] embeddings when E != H) to H. Position and token-type tables are H wide.

    Args:
      config: a `MobileBertConfig` (or its dict form).

    Weights: `word_embeddings` [V, E], `embedding_transformation/{kernel [3E or E, H], bias [H]}`
    (trigram or E != H only), `position_embeddings` [P, H], `token_type_embeddings` [T, H],
    `norm/{gamma, beta}` [H].

    Example:
    >>> config = MobileBertConfig(vocab_size=20, hidden_size=8, num_attention_heads=2,
    ...     embedding_size=4, trigram_input=True, max_position_embeddings=16)
    >>> MobileBertEmbeddings(config)(tf.constant([[2, 5, 3]])).shape
    TensorShape([1, 3, 8])
    """

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        config = self.config
        self.vocab_size = config.vocab_size
        self.embedding_size = config.embedding_size
        self.embedding_transformation = None
        if config.trigram_input or config.embedding_size != config.hidden_size:
            self.embedding_transformation = dense(
                config.hidden_size,
                config.initializer_range,
                self.dtype_policy,
                "embedding_transformation",
            )
        self.norm = make_norm(
            config.normalization_type, config.layer_norm_eps, dtype=self.dtype_policy, name="norm"
        )
        self.dropout = Dropout(config.hidden_dropout_prob, dtype=self.dtype_policy, name="dropout")

    def build(self, input_shape=None):
        # Weight shapes come from the config; `build()` needs no input shape.
        c = self.config
        init = truncated_normal(c.initializer_range)
        self.word_embeddings = self.add_weight(
            shape=(c.vocab_size, c.embedding_size), initializer=init, name="word_embeddings"
        )
        if self.embedding_transformation is not None:
            width = c.embedding_size * (3 if c.trigram_input else 1)
            self.embedding_transformation.build((None, None, width))
        self.position_embeddings = self.add_weight(
            shape=(c.max_position_embeddings, c.hidden_size),
            initializer=init,
            name="position_embeddings",
        )
        self.token_type_embeddings = self.add_weight(
            shape=(c.type_vocab_size, c.hidden_size), initializer=init, name="token_type_embeddings"
        )
        self.norm.build((None, None, c.hidden_size))
        self.built = True

    def call(self, input_ids, segment_ids=None, training=None):
        # input_ids, segment_ids: [B, T] int; segment_ids=None means all zeros.
        seq_length = sequence_length(input_ids, self.config.max_position_embeddings)
        embeddings = tf.gather(self.word_embeddings, input_ids)  # [B, T, E]
        if self.config.trigram_input:
            zeros = tf.zeros_like(embeddings[:, :1])  # [B, 1, E]
            following = tf.concat([embeddings[:, 1:], zeros], axis=1)  # token t+1 at t
            preceding = tf.concat([zeros, embeddings[:, :-1]], axis=1)  # token t-1 at t
            embeddings = tf.concat([following, embeddings, preceding], axis=2)  # [B, T, 3E]
        if self.embedding_transformation is not None:
            embeddings = self.embedding_transformation(embeddings)  # [B, T, H]
        if segment_ids is None:
            embeddings += self.token_type_embeddings[0]  # [H]
        else:
            embeddings += tf.gather(self.token_type_embeddings, segment_ids)  # [B, T, H]
        embeddings += self.position_embeddings[:seq_length][None]  # [1, T, H]
        embeddings = self.norm(embeddings)
        return self.dropout(embeddings, training=training)  # [B, T, H]


@keras.saving.register_keras_serializable(package="electra_tf")
class MobileBertAttention(ConfigLayer):
    """Multi-head attention with separate query/key/value inputs; returns the scores too.

    MobileBERT takes queries and keys from one tensor (the block input or a bottleneck) and
    values from another, each possibly of a different width; the output has `output_size`
    (the block's inner width). Scores are computed in float32, pre-softmax with the padding
    adder (-10000) included, as the original returns them.

    Args:
      num_heads: attention heads N.
      head_size: width D of each head.
      output_size: width of the output projection.
      dropout_rate: dropout of the attention probabilities.
      initializer_range: stddev of the truncated-normal kernel initializers.

    Weights: `{query,key,value}/kernel` [in, N, D], `{query,key,value}/bias` [N, D],
    `output/kernel` [N, D, output_size], `output/bias` [output_size].

    Example:
    >>> attention = MobileBertAttention(num_heads=2, head_size=4, output_size=8)
    >>> q = tf.ones((1, 3, 8)); v = tf.ones((1, 3, 16))
    >>> output, scores = attention(q, q, v)
    >>> output.shape, scores.shape
    (TensorShape([1, 3, 8]), TensorShape([1, 2, 3, 3]))
    """

    def __init__(
        self, num_heads, head_size, output_size, dropout_rate=0.0, initializer_range=0.02, **kwargs
    ):
        super().__init__(**kwargs)
        self.remember(locals())

    def build(self, query_shape, key_shape=None, value_shape=None):
        # query_shape, key_shape, value_shape: [B, T, width] (widths may differ).
        key_shape = key_shape or query_shape
        value_shape = value_shape or key_shape
        heads = (None, self.num_heads, self.head_size)

        def projection(equation, output_shape, bias_axes, name):
            return einsum_projection(self, equation, output_shape, bias_axes, name)

        self.query = projection("btw,wnd->btnd", heads, "nd", "query")
        self.key = projection("btw,wnd->btnd", heads, "nd", "key")
        self.value = projection("btw,wnd->btnd", heads, "nd", "value")
        self.output_dense = projection("btnd,ndo->bto", (None, self.output_size), "o", "output")
        self.dropout = Dropout(self.dropout_rate, dtype=self.dtype_policy, name="dropout")
        self.query.build(query_shape)
        self.key.build(key_shape)
        self.value.build(value_shape)
        self.output_dense.build((None, None, self.num_heads, self.head_size))
        self.built = True

    def call(self, query, key, value, input_mask=None, training=None):
        # query: [B, T, Wq]; key: [B, T, Wk]; value: [B, T, Wv]; input_mask: [B, T] 0/1.
        q = self.query(query)  # [B, T, N, D]
        k = self.key(key)  # [B, S, N, D]
        v = self.value(value)  # [B, S, N, D]
        scores = tf.einsum("btnd,bsnd->bnts", q, k)  # [B, N, T, S]
        scores = tf.cast(scores, tf.float32) * (1.0 / math.sqrt(self.head_size))
        if input_mask is not None:
            adder = (1.0 - tf.cast(input_mask, tf.float32)) * _MASK_ADDER  # [B, S]
            scores += adder[:, None, None, :]
        probs = tf.cast(tf.nn.softmax(scores, axis=-1), v.dtype)
        probs = self.dropout(probs, training=training)
        context = tf.einsum("bnts,bsnd->btnd", probs, v)  # [B, T, N, D]
        return self.output_dense(context), scores  # [B, T, output_size], [B, N, T, S]


@keras.saving.register_keras_serializable(package="electra_tf")
class MobileBertFFN(ConfigLayer):
    """One of a block's stacked feed-forward networks: `norm(x + dense(act(dense(x))))`.

    Args:
      intermediate_size: inner width I.
      activation: activation name (`get_activation`).
      normalization_type: "no_norm" or "layer_norm".
      initializer_range: stddev of the kernel initializers.
      layer_norm_eps: LayerNorm epsilon.

    Weights: `intermediate/{kernel [W, I], bias [I]}`, `output/{kernel [I, W], bias [W]}`,
    `output_norm/{gamma, beta}` [W], W the input width.

    Example:
    >>> MobileBertFFN(intermediate_size=16, activation="relu")(tf.ones((1, 3, 8))).shape
    TensorShape([1, 3, 8])
    """

    def __init__(
        self,
        intermediate_size,
        activation="relu",
        normalization_type="no_norm",
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.remember(locals())

    def build(self, input_shape):
        # input_shape: [B, T, W]
        width = input_shape[-1]
        self.intermediate, self.output_dense = feed_forward(
            self.intermediate_size,
            width,
            self.initializer_range,
            self.dtype_policy,
            self.activation,
        )
        self.output_norm = make_norm(
            self.normalization_type,
            self.layer_norm_eps,
            dtype=self.dtype_policy,
            name="output_norm",
        )
        self.intermediate.build(input_shape)
        self.output_dense.build(tuple(input_shape[:-1]) + (self.intermediate_size,))
        self.output_norm.build(input_shape)
        self.built = True

    def call(self, hidden_states):
        # hidden_states: [B, T, W]
        output = self.output_dense(self.intermediate(hidden_states))  # [B, T, W]
        return self.output_norm(output + hidden_states)


@keras.saving.register_keras_serializable(package="electra_tf")
class MobileBertBlock(ConfiguredLayer):
    """One MobileBERT block (a post-norm BERT layer when the bottleneck is off).

        x_b = norm(dense_B(x))                             # input bottleneck (use_bottleneck)
        q, k, v = x_b, x_b, x_b                            # use_bottleneck_attention
                | s, s, x  with s = norm(dense_B'(x))      # key_query_shared_bottleneck
                | x, x, x                                  # otherwise
        a = norm(attention(q, k, v) + x_b)                 # x_b = x without bottleneck
        a = ffn_j(a) for the num_feedforward_networks - 1 extra FFNs
        y = norm(dense_W(act(dense_I(a))) + a)
        y = norm(dense_H(y) + x)                           # output bottleneck (use_bottleneck)

    W is the inner width (B with the bottleneck, else H). Dropout (`hidden_dropout_prob`) acts
    where the original's does: after the attention projection and the last FFN when there is
    no bottleneck, after the output bottleneck's dense when there is.

    Args:
      config: a `MobileBertConfig` (or its dict form).

    Weights: see the table in this module's docstring.

    Example:
    >>> config = MobileBertConfig(vocab_size=20, hidden_size=16, num_attention_heads=2,
    ...     intermediate_size=8, use_bottleneck=True, intra_bottleneck_size=4,
    ...     key_query_shared_bottleneck=True, num_feedforward_networks=2,
    ...     normalization_type="no_norm", hidden_act="relu")
    >>> output, scores = MobileBertBlock(config)(tf.ones((1, 3, 16)))
    >>> output.shape, scores.shape
    (TensorShape([1, 3, 16]), TensorShape([1, 2, 3, 3]))
    """

    def _norm(self, name):
        c = self.config
        return make_norm(c.normalization_type, c.layer_norm_eps, dtype=self.dtype_policy, name=name)

    def _bottleneck(self, name):
        """A built bottleneck: the dense H -> B called `name` and its norm."""
        c = self.config
        projection = dense(c.intra_bottleneck_size, c.initializer_range, self.dtype_policy, name)
        norm = self._norm(f"{name}_norm")
        projection.build((None, None, c.hidden_size))
        norm.build((None, None, c.true_hidden_size))
        return projection, norm

    def build(self, input_shape=None):
        # input_shape: [B, T, H]; known from the config.
        c = self.config
        hidden = (None, None, c.hidden_size)
        inner = (None, None, c.true_hidden_size)
        dtype = self.dtype_policy
        self.bottleneck_input = self.bottleneck_attention = None
        if c.use_bottleneck:
            self.bottleneck_input, self.bottleneck_input_norm = self._bottleneck("bottleneck_input")
            if c.key_query_shared_bottleneck:
                self.bottleneck_attention, self.bottleneck_attention_norm = self._bottleneck(
                    "bottleneck_attention"
                )
        if c.use_bottleneck_attention:
            query_shape = value_shape = inner
        elif c.key_query_shared_bottleneck:
            query_shape, value_shape = inner, hidden
        else:
            query_shape = value_shape = hidden
        self.attention = MobileBertAttention(
            c.num_attention_heads,
            c.true_hidden_size // c.num_attention_heads,
            c.true_hidden_size,
            dropout_rate=c.attention_probs_dropout_prob,
            initializer_range=c.initializer_range,
            dtype=dtype,
            name="attention",
        )
        self.attention.build(query_shape, query_shape, value_shape)
        self.attention_norm = self._norm("attention_norm")
        self.attention_norm.build(inner)
        self.ffns = []
        for j in range(c.num_feedforward_networks - 1):
            ffn = MobileBertFFN(**c.layer_kwargs(MobileBertFFN), dtype=dtype, name=f"ffn_layer_{j}")
            ffn.build(inner)
            self.ffns.append(ffn)
        self.intermediate, self.output_dense = feed_forward(
            c.intermediate_size, c.true_hidden_size, c.initializer_range, dtype, c.hidden_act
        )
        self.output_norm = self._norm("output_norm")
        self.intermediate.build(inner)
        self.output_dense.build((None, None, c.intermediate_size))
        self.output_norm.build(inner)
        self.output_bottleneck = None
        if c.use_bottleneck:
            self.output_bottleneck = dense(
                c.hidden_size, c.initializer_range, dtype, "output_bottleneck"
            )
            self.output_bottleneck_norm = self._norm("output_bottleneck_norm")
            self.output_bottleneck.build(inner)
            self.output_bottleneck_norm.build(hidden)
        # Stateless apart from its seed, so one layer serves every site.
        self.dropout = Dropout(c.hidden_dropout_prob, dtype=dtype, name="dropout")
        self.built = True

    def call(self, hidden_states, input_mask=None, training=None):
        # hidden_states: [B, T, H]; input_mask: [B, T] of 0/1.
        c = self.config
        layer_input = query = value = hidden_states
        if c.use_bottleneck:
            layer_input = self.bottleneck_input_norm(
                self.bottleneck_input(hidden_states)
            )  # [B,T,W]
            if c.use_bottleneck_attention:
                query = value = layer_input
            elif c.key_query_shared_bottleneck:
                query = self.bottleneck_attention_norm(self.bottleneck_attention(hidden_states))
        attention_output, scores = self.attention(
            query, query, value, input_mask=input_mask, training=training
        )  # [B, T, W], [B, N, T, T]
        if not c.use_bottleneck:
            attention_output = self.dropout(attention_output, training=training)
        output = self.attention_norm(attention_output + layer_input)  # [B, T, W]
        for ffn in self.ffns:
            output = ffn(output)
        ffn_output = self.output_dense(self.intermediate(output))  # [B, T, W]
        if not c.use_bottleneck:
            ffn_output = self.dropout(ffn_output, training=training)
        output = self.output_norm(ffn_output + output)  # [B, T, W]
        if c.use_bottleneck:
            output = self.dropout(self.output_bottleneck(output), training=training)  # [B, T, H]
            output = self.output_bottleneck_norm(output + hidden_states)
        return output, scores  # [B, T, H], [B, N, T, T]


@keras.saving.register_keras_serializable(package="electra_tf")
class MobileBertEncoder(ConfiguredLayer):
    """MobileBERT (or plain BERT) encoder: embeddings, blocks and the pooler.

    Args:
      config: a `MobileBertConfig` (or its dict form).

    `call(inputs, training=None, return_attention_scores=False)` takes a dict of [B, T] int
    tensors `input_ids`, `input_mask` (1 = real token) and `segment_ids` (the last two
    optional) and returns a dict:
      sequence_output: [B, T, H], the last block's output.
      pooled_output: [B, H], tanh(dense(first token)) with `classifier_activation`, else the
        first token.
      embedding_output: [B, T, H], the input of the first block.
      encoder_outputs: list of every block's output, [B, T, H] each.
      attention_scores (when asked): list of [B, N, T, T] float32 pre-softmax scores per block,
        the padding adder included.

    Weights: `embeddings/...`, `layer_{i}/...`, `pooler/{kernel [H, H], bias [H]}` (see the
    module docstring for the original names).

    Example:
    >>> config = MobileBertConfig(vocab_size=20, hidden_size=16, num_hidden_layers=2,
    ...     num_attention_heads=2, intermediate_size=8, embedding_size=8, trigram_input=True,
    ...     use_bottleneck=True, intra_bottleneck_size=4, use_bottleneck_attention=True,
    ...     normalization_type="no_norm", hidden_act="relu", max_position_embeddings=16)
    >>> outputs = MobileBertEncoder(config)({"input_ids": tf.constant([[2, 7, 3]])})
    >>> outputs["sequence_output"].shape, len(outputs["encoder_outputs"])
    (TensorShape([1, 3, 16]), 2)
    """

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        config = self.config
        self.embeddings = MobileBertEmbeddings(config, dtype=self.dtype_policy, name="embeddings")
        self.blocks = [
            MobileBertBlock(config, dtype=self.dtype_policy, name=f"layer_{i}")
            for i in range(config.num_hidden_layers)
        ]
        self.pooler = None
        if config.classifier_activation:
            self.pooler = keras.layers.Dense(
                config.hidden_size,
                activation="tanh",
                kernel_initializer=truncated_normal(config.initializer_range),
                dtype=self.dtype_policy,
                name="pooler",
            )

    def build(self, inputs_shape=None):
        # Shapes are known from the config; inputs_shape may be omitted.
        self.embeddings.build()
        for block in self.blocks:
            block.build((None, None, self.config.hidden_size))
        if self.pooler is not None:
            self.pooler.build((None, self.config.hidden_size))
        self.built = True

    def call(self, inputs, training=None, return_attention_scores=False):
        input_mask = inputs.get("input_mask")
        hidden_states = self.embeddings(
            inputs["input_ids"], inputs.get("segment_ids"), training=training
        )  # [B, T, H]
        embedding_output = hidden_states
        encoder_outputs, attention_scores = [], []
        for block in self.blocks:
            hidden_states, scores = block(hidden_states, input_mask=input_mask, training=training)
            encoder_outputs.append(hidden_states)
            attention_scores.append(scores)
        pooled_output = hidden_states[:, 0]  # [B, H]
        if self.pooler is not None:
            pooled_output = self.pooler(pooled_output)
        outputs = {
            "sequence_output": hidden_states,
            "pooled_output": pooled_output,
            "embedding_output": embedding_output,
            "encoder_outputs": encoder_outputs,
        }
        if return_attention_scores:
            outputs["attention_scores"] = attention_scores
        return outputs


@keras.saving.register_keras_serializable(package="electra_tf")
class MobileBertMaskedLMHead(TiedHead):
    """The original's `cls/predictions`: dense(H) + act + LayerNorm, then tied vocabulary logits.

    The output weights are the word embedding table [V, E], concatenated with the head's own
    `extra_output_weights` [V, H - E] when E < H, so that they are H wide:
    `logits = LayerNorm(act(dense(x))) @ concat([table, extra], 1)^T + output_bias`.
    The transform's normalization is always a real LayerNorm, as in the original.

    Args:
      embeddings: the `MobileBertEmbeddings` whose `word_embeddings` are tied to the output.
      hidden_size: H, the width of the encoder output.
      activation: the transform's activation (the config's `hidden_act`).
      initializer_range: stddev of the initializers.
      layer_norm_eps: the transform LayerNorm's epsilon.

    Weights (besides the tied table): `dense/{kernel [H, H], bias [H]}`,
    `layer_norm/{gamma, beta}` [H], `extra_output_weights` [V, H - E] (E < H only),
    `output_bias` [V] (float32).

    Example:
    >>> config = MobileBertConfig(vocab_size=20, hidden_size=8, num_attention_heads=2,
    ...     embedding_size=4, max_position_embeddings=16)
    >>> embeddings = MobileBertEmbeddings(config)
    >>> head = MobileBertMaskedLMHead(embeddings, hidden_size=8)
    >>> head(tf.ones((2, 3, 8))).shape
    TensorShape([2, 3, 20])
    """

    def __init__(
        self,
        embeddings,
        hidden_size,
        activation="gelu",
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.remember(locals())

    def build(self, input_shape=None):
        # input_shape: [B, P, H]
        vocab_size, embedding_size = self.embeddings.vocab_size, self.embeddings.embedding_size
        if embedding_size > self.hidden_size:
            raise ValueError(
                f"The word embeddings are {embedding_size} wide, more than hidden_size "
                f"{self.hidden_size}."
            )
        self.dense = dense(
            self.hidden_size,
            self.initializer_range,
            self.dtype_policy,
            "dense",
            activation=self.activation,
        )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_eps, dtype=self.dtype_policy, name="layer_norm"
        )
        self.dense.build((None, None, self.hidden_size))
        self.layer_norm.build((None, None, self.hidden_size))
        self.extra_output_weights = None
        if embedding_size < self.hidden_size:
            self.extra_output_weights = self.add_weight(
                shape=(vocab_size, self.hidden_size - embedding_size),
                initializer=truncated_normal(self.initializer_range),
                name="extra_output_weights",
            )
        self.output_bias = self.add_weight(
            shape=(vocab_size,), initializer="zeros", autocast=False, name="output_bias"
        )
        if not self.embeddings.built:
            self.embeddings.build()
        self.built = True

    def output_weights(self):
        """The [V, H] output matrix: the word table, widened by `extra_output_weights`."""
        table = self.embeddings.word_embeddings  # [V, E]
        if self.extra_output_weights is None:
            return table
        return tf.concat([table, tf.cast(self.extra_output_weights, table.dtype)], axis=1)

    def call(self, hidden_states):
        # hidden_states: [B, P, H]
        hidden_states = self.layer_norm(self.dense(hidden_states))  # [B, P, H]
        weights = tf.cast(self.output_weights(), hidden_states.dtype)  # [V, H]
        logits = heads.tied_logits(hidden_states, weights)  # [B, P, V], one 2-D matmul
        return tf.cast(logits, tf.float32) + self.output_bias


def masked_lm_head_for(encoder, **kwargs):
    """The `MobileBertMaskedLMHead` tied to `encoder`'s embeddings, sized by its config."""
    return MobileBertMaskedLMHead(
        encoder.embeddings, **encoder.config.layer_kwargs(MobileBertMaskedLMHead), **kwargs
    )


@keras.saving.register_keras_serializable(package="electra_tf")
class MobileBertForPreTraining(keras.Model):
    """A `MobileBertEncoder` ("encoder") and its tied `MobileBertMaskedLMHead` ("mlm_head").

    Args:
      config: a `MobileBertConfig` (or its dict form).
      encoder_name: the encoder's layer name; "electra" makes a student whose encoder,
        built on its own (`build_parts`), has the paths fine-tuning restores
        (`electra/layer_0/...`).

    `call(inputs, training=None, return_attention_scores=False)` returns the encoder's dict
    (see `MobileBertEncoder`) plus, when `inputs` holds `masked_lm_positions` [B, P],
    `mlm_logits` [B, P, V] (float32) at those positions.

    Example:
    >>> config = MobileBertConfig(vocab_size=20, hidden_size=16, num_hidden_layers=1,
    ...     num_attention_heads=2, intermediate_size=8, max_position_embeddings=16)
    >>> model = MobileBertForPreTraining(config)
    >>> outputs = model({"input_ids": tf.constant([[2, 7, 3]]),
    ...     "masked_lm_positions": tf.constant([[1]])})
    >>> outputs["mlm_logits"].shape
    TensorShape([1, 1, 20])
    """

    def __init__(self, config, encoder_name="encoder", **kwargs):
        kwargs.setdefault("name", "mobilebert")
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = MobileBertConfig.from_dict(config)
        self.config = config
        self.encoder_name = encoder_name
        self.encoder = MobileBertEncoder(config, dtype=self.dtype_policy, name=encoder_name)
        self.mlm_head = masked_lm_head_for(self.encoder, dtype=self.dtype_policy, name="mlm_head")

    def build(self, inputs_shape=None):
        self.encoder.build()
        self.mlm_head.build((None, None, self.config.hidden_size))
        self.built = True

    def build_parts(self):
        """Builds the encoder and the head each on its own, so that their variable paths start
        with their own names (`electra/...`, `mlm_head/...`) rather than the model's."""
        self.encoder.build()
        self.mlm_head.build((None, None, self.config.hidden_size))
        self.built = True

    def call(self, inputs, training=None, return_attention_scores=False):
        outputs = self.encoder(
            inputs, training=training, return_attention_scores=return_attention_scores
        )
        positions = inputs.get("masked_lm_positions")
        if positions is not None:
            selected = gather_positions(outputs["sequence_output"], positions)  # [B, P, H]
            outputs["mlm_logits"] = self.mlm_head(selected)  # [B, P, V]
        return outputs

    def get_config(self):
        config = {"config": self.config.to_dict(), "name": self.name}
        if self.encoder_name != "encoder":
            config["encoder_name"] = self.encoder_name
        return config
