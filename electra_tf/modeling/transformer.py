"""Post-LayerNorm BERT transformer block and its multi-head self-attention."""

import math

import keras
import tensorflow as tf

from electra_tf.modeling.base import ConfigLayer
from electra_tf.modeling.dropout import Dropout
from electra_tf.modeling.embeddings import truncated_normal

# Added to attention scores of padded keys, as in BERT; exp() of it is 0 in fp32.
_MASK_ADDER = -10000.0


def _gelu(x):
    # Exact GELU, x * Phi(x) with the erf form, as the reference `gelu`.
    return tf.nn.gelu(x, approximate=False)


def _gelu_tanh(x):
    # The tanh approximation (Hugging Face "gelu_new").
    return tf.nn.gelu(x, approximate=True)


_ACTIVATIONS = {
    "gelu": _gelu,
    "gelu_new": _gelu_tanh,
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
    "linear": None,
}


def get_activation(name):
    """Maps a config `hidden_act` string to a function (None for "linear")."""
    try:
        return _ACTIVATIONS[name.lower()]
    except KeyError:
        raise ValueError(
            f"Unsupported activation {name!r}; expected one of {sorted(_ACTIVATIONS)}."
        ) from None


def dense(units, initializer_range, dtype, name, activation=None):
    """A `Dense` as the reference builds its hidden layers: truncated-normal kernel
    (`initializer_range`), zero bias, an optional activation by name (`get_activation`)."""
    return keras.layers.Dense(
        units,
        activation=get_activation(activation) if activation else None,
        kernel_initializer=truncated_normal(initializer_range),
        dtype=dtype,
        name=name,
    )


def feed_forward(intermediate_size, width, initializer_range, dtype, activation):
    """A feed-forward network's two reference-style Dense layers: "intermediate" (to
    `intermediate_size`, with `activation`) and "output" (back to `width`)."""
    intermediate = dense(intermediate_size, initializer_range, dtype, "intermediate", activation)
    return intermediate, dense(width, initializer_range, dtype, "output")


def einsum_projection(layer, equation, output_shape, bias_axes, name):
    """An `EinsumDense` of `layer`'s dtype policy, initialised as BERT's dense layers (the query,
    key, value and output projections of the attention layers)."""
    return keras.layers.EinsumDense(
        equation,
        output_shape=output_shape,
        bias_axes=bias_axes,
        kernel_initializer=truncated_normal(layer.initializer_range),
        dtype=layer.dtype_policy,
        name=name,
    )


@keras.saving.register_keras_serializable(package="electra_tf")
class SelfAttention(ConfigLayer):
    """Multi-head scaled dot-product self-attention with a key padding (or [B, T, T]) mask.

    Query/key/value kernels are [H, heads, head_size] and the output kernel is
    [heads, head_size, H]: a reshape of BERT's [H, H] dense kernels, so
    checkpoints map one to one. Scores and softmax are computed in float32.

    Weights: `{query,key,value}/kernel` [H, N, D], `{query,key,value}/bias`
    [N, D], `output/kernel` [N, D, H], `output/bias` [H]. Einsum letters follow
    the same names: b batch, t/s query/key position, h hidden, n head, d head size.

    Example:

    >>> SelfAttention(num_heads=2, head_size=8)(tf.ones((2, 5, 16))).shape
    TensorShape([2, 5, 16])
    """

    def __init__(self, num_heads, head_size, dropout_rate=0.0, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.remember(locals())

    def build(self, input_shape):
        # input_shape: [B, T, H]
        hidden_size = input_shape[-1]

        def projection(equation, output_shape, bias_axes, name):
            return einsum_projection(self, equation, output_shape, bias_axes, name)

        heads_shape = (None, self.num_heads, self.head_size)
        self.query = projection("bth,hnd->btnd", heads_shape, "nd", "query")
        self.key = projection("bth,hnd->btnd", heads_shape, "nd", "key")
        self.value = projection("bth,hnd->btnd", heads_shape, "nd", "value")
        self.output_dense = projection("btnd,ndh->bth", (None, hidden_size), "h", "output")
        self.dropout = Dropout(self.dropout_rate, dtype=self.dtype_policy, name="dropout")
        for layer in (self.query, self.key, self.value):
            layer.build(input_shape)
        self.output_dense.build(tuple(input_shape[:-1]) + heads_shape[1:])
        self.built = True

    def call(self, hidden_states, input_mask=None, training=None):
        # hidden_states: [B, T, H]; input_mask: [B, T], 1 = real token, 0 = pad, or [B, T, T]
        # (query t may attend key s where it is 1, e.g. a padding mask times a causal mask).
        # Scaling the query instead of the scores is the same math on fewer
        # elements ([B, T, N, D] instead of [B, N, T, T]).
        query = self.query(hidden_states) * (1.0 / math.sqrt(self.head_size))
        key = self.key(hidden_states)  # [B, T, N, D]
        value = self.value(hidden_states)  # [B, T, N, D]
        scores = tf.einsum("btnd,bsnd->bnts", query, key)  # [B, N, T, T]
        scores = tf.cast(scores, tf.float32)
        if input_mask is not None:
            mask = tf.cast(input_mask, tf.float32)  # [B, S] keys, or [B, T, S] per query
            if mask.shape.rank == 2:
                mask = mask[:, None, :]
            scores += ((1.0 - mask) * _MASK_ADDER)[:, None, :, :]  # [B, 1, T or 1, S]
        probs = tf.cast(tf.nn.softmax(scores, axis=-1), value.dtype)
        probs = self.dropout(probs, training=training)
        context = tf.einsum("bnts,bsnd->btnd", probs, value)  # [B, T, N, D]
        return self.output_dense(context)  # [B, T, H]


@keras.saving.register_keras_serializable(package="electra_tf")
class TransformerBlock(ConfigLayer):
    """A post-LayerNorm BERT encoder layer.

        x = LayerNorm(x + Dropout(SelfAttention(x)))
        x = LayerNorm(x + Dropout(Dense(act(Dense(x)))))

    The hidden size H is taken from the input. LayerNorm statistics are
    computed in float32 under mixed precision.

    Weights: `attention/...` (see `SelfAttention`), `attention_layer_norm`,
    `intermediate/{kernel [H, I], bias [I]}`, `output/{kernel [I, H], bias [H]}`,
    `output_layer_norm`.

    Example:

    >>> block = TransformerBlock(num_heads=2, intermediate_size=32)
    >>> block(tf.ones((2, 5, 16)), input_mask=tf.constant([[1] * 5, [1, 1, 1, 0, 0]])).shape
    TensorShape([2, 5, 16])
    """

    def __init__(
        self,
        num_heads,
        intermediate_size,
        activation="gelu",
        dropout_rate=0.1,
        attention_dropout_rate=0.1,
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.remember(locals())

    def build(self, input_shape):
        # input_shape: [B, T, H]
        hidden_size = input_shape[-1]
        if hidden_size % self.num_heads:
            raise ValueError(
                f"Hidden size {hidden_size} is not a multiple of num_heads={self.num_heads}."
            )
        self.attention = SelfAttention(
            self.num_heads,
            hidden_size // self.num_heads,
            dropout_rate=self.attention_dropout_rate,
            initializer_range=self.initializer_range,
            dtype=self.dtype_policy,
            name="attention",
        )
        self.attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_eps,
            dtype=self.dtype_policy,
            name="attention_layer_norm",
        )
        self.intermediate, self.output_dense = feed_forward(
            self.intermediate_size,
            hidden_size,
            self.initializer_range,
            self.dtype_policy,
            self.activation,
        )
        self.output_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_eps,
            dtype=self.dtype_policy,
            name="output_layer_norm",
        )
        # Stateless apart from its seed, so one layer serves both sites.
        self.dropout = Dropout(self.dropout_rate, dtype=self.dtype_policy, name="dropout")
        self.attention.build(input_shape)
        self.attention_layer_norm.build(input_shape)
        self.intermediate.build(input_shape)
        self.output_dense.build(tuple(input_shape[:-1]) + (self.intermediate_size,))
        self.output_layer_norm.build(input_shape)
        self.built = True

    def call(self, hidden_states, input_mask=None, training=None):
        # hidden_states: [B, T, H]; input_mask: [B, T] or [B, T, T] of 0/1 (see SelfAttention).
        attention_output = self.attention(hidden_states, input_mask=input_mask, training=training)
        attention_output = self.dropout(attention_output, training=training)
        hidden_states = self.attention_layer_norm(hidden_states + attention_output)
        ffn_output = self.intermediate(hidden_states)  # [B, T, I]
        ffn_output = self.output_dense(ffn_output)  # [B, T, H]
        ffn_output = self.dropout(ffn_output, training=training)
        return self.output_layer_norm(hidden_states + ffn_output)  # [B, T, H]
