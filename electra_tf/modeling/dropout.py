"""Inverted dropout drawing 16 random bits per element instead of a float32 uniform."""

import keras
import tensorflow as tf

from electra_tf.modeling.base import ConfigLayer

_LEVELS = 1 << 16  # keep/drop resolution: each element gets a 16-bit random number


@keras.saving.register_keras_serializable(package="electra_tf")
class Dropout(ConfigLayer):
    """Zeroes each element with probability `rate` and scales the rest by 1 / (1 - rate).

    Same semantics as `keras.layers.Dropout`, with the drop probability rounded to a
    multiple of 2^-16 (0.1 becomes 0.100006). Each 32-bit Philox output decides two
    elements, so a step draws half the random numbers of Keras' float uniform; dropout's
    random draws were the largest non-matmul cost of a pre-training step on CPU. Philox is
    named explicitly: XLA on CPU runs the default algorithm 40-100x slower. The mask is
    applied as one multiply, so the backward pass is one multiply too.

    The random state lives in a Keras `SeedGenerator` (a variable the training loop
    checkpoints), so a resumed run continues the same stream.

    Example:

    >>> dropped = Dropout(0.5, seed=0)(tf.ones((1000,)), training=True)
    >>> sorted(set(dropped.numpy().tolist()))  # dropped, or kept and scaled by 1 / (1 - 0.5)
    [0.0, 2.0]
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1], got {rate}.")
        self.remember(locals())
        self.seed_generator = keras.random.SeedGenerator(seed) if rate > 0 else None

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        threshold = round(self.rate * _LEVELS)  # drop when the 16 bits are below it
        if threshold >= _LEVELS:
            return tf.zeros_like(inputs)
        # Keras' int64 seed state -> the int32 seed stateless ops take under XLA.
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1), tf.int32)
        size = inputs.shape.num_elements()
        if size is None:
            size = tf.size(inputs)
        words = tf.random.stateless_uniform(
            [(size + 1) // 2],
            seed,
            minval=None,
            maxval=None,
            dtype=tf.uint32,
            alg="philox",  # the default picks an algorithm XLA on CPU runs 100x slower
        )
        bits = tf.reshape(tf.bitcast(words, tf.uint16), [-1])  # 2 per word
        if isinstance(size, int) and size % 2 == 0:
            bits = tf.reshape(bits, tf.shape(inputs))
        else:
            bits = tf.reshape(bits[:size], tf.shape(inputs))
        keep = bits >= tf.constant(threshold, tf.uint16)
        scale = tf.cast(1.0 / (1.0 - self.rate), inputs.dtype)
        return inputs * (tf.cast(keep, inputs.dtype) * scale)

    def compute_output_shape(self, input_shape):
        return input_shape
