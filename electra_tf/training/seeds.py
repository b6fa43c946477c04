"""Stateless random keys: the same on resume, different per step, replica and purpose."""

import tensorflow as tf

ALG = "philox"  # pinned so that a key means the same stream on CPU, GPU and TPU


def derive_seed(seed, *data):
    """A [2] int64 stateless key from an int seed and values such as (global_step, replica_id).

    Folding the step in gives every step fresh randomness that a resumed run reproduces; folding the
    replica id in gives each replica its own. Fold in one more constant per purpose (masking,
    generator sampling) rather than reusing one key for both.
    """
    key = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    for value in data:
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(value, tf.int64), alg=ALG)
    return key


def step_seed(base_seed, step):
    """Stateless seed of the current replica at one step (call inside `strategy.run`)."""
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    return derive_seed(base_seed, step, replica)
