"""In-graph dynamic masking for ELECTRA and BERT-style masked-LM pre-training.

Everything here runs inside a jit-compiled, distributed train step: static shapes (batch B, length
T, max_predictions_per_seq P), no strings, no host round-trips, and only stateless randomness keyed
by an explicit seed tensor. With a key from `training.seeds.derive_seed(seed, global_step, replica_id)` a resumed
run draws exactly the masks it would have drawn without the interruption. Random floats are built
from Philox integer bits (see `_uniform`), so eager and XLA runs give bit-identical masks.

Positions are chosen in one of three ways:

* uniform (default): exactly `min(P, max(1, round(mask_prob * n)))` distinct positions, n being
  the number of candidate tokens (not special, not padding); none if n == 0. Rounding is
  half-to-even (tf.round), as in the reference.
* whole_word: words (a candidate starting a word, then its `##` pieces) in random order are taken
  whole while they fit the same token budget, skipping any that do not -- BERT's whole-word
  masking. If no word fits, the budget grows to the shortest word (at most P), so a sequence with
  candidates gets at least one word unless all its words have more than P pieces.
* with_replacement: the reference's `mask()`: P draws with replacement over the candidates, of
  which the first `min(P, max(1, round(mask_prob * sum(input_mask))))` count (special tokens
  included in that length, as in the reference); repeated draws mask one token but keep one
  weight each, so fewer distinct tokens than intended are masked. A sequence without candidates
  gets no slots (the reference divides by zero there). The generator's samples are then written
  with `scatter_update(..., average_duplicates=True)` as in the reference: a position drawn twice
  receives the floor of the mean of its sampled ids.

Each chosen slot then becomes [MASK] with probability `mask_token_prob` (0.85 in the reference),
a uniformly random id with probability `random_token_prob` (0.0 in the reference; BERT uses
0.8 / 0.1) and stays unchanged otherwise.
"""

import numpy as np
import tensorflow as tf

from electra_tf.training import seeds

__all__ = [
    "STRATEGIES",
    "mask_inputs",
    "sample_from_softmax",
    "scatter_update",
    "unmask",
]

STRATEGIES = ("uniform", "whole_word")
_ALG = seeds.ALG
# What happens to a chosen token; a token picked by several slots takes the highest code, so
# [MASK] wins like in the reference's scatter.
_KEEP, _RANDOM, _MASK = 0, 1, 2


def _uniform(shape, seed):
    """Stateless uniform float32 in [0, 1) with 24 random bits.

    `tf.random.stateless_uniform` turns bits into floats differently in eager and under XLA; its
    integer output agrees, so the floats are made from its bits.
    """
    bits = tf.random.stateless_uniform(
        shape, seed, minval=None, maxval=None, dtype=tf.int32, alg=_ALG
    )
    return tf.cast(tf.bitwise.bitwise_and(bits, (1 << 24) - 1), tf.float32) * (1.0 / (1 << 24))


def _budget(count, mask_prob, num_slots, allowed):
    """Tokens to mask per sequence [B]: round(mask_prob * count) in [1, P]; 0 where not allowed."""
    wanted = tf.cast(tf.round(mask_prob * tf.cast(count, tf.float32)), tf.int32)  # [B]
    return tf.where(allowed, tf.clip_by_value(wanted, 1, num_slots), 0)


def _sorted_slots(positions, valid, seq_len):
    """Moves the valid positions [B, P] to the front, ascending; the rest become 0 and invalid."""
    ordered = tf.sort(tf.where(valid, positions, seq_len), axis=-1)
    valid = ordered < seq_len
    return tf.where(valid, ordered, 0), valid


def _sample_uniform(candidates, budget, num_slots, key):
    """`budget` [B] distinct candidate positions per sequence: the top scores of random noise."""
    scores = tf.where(candidates, _uniform(tf.shape(candidates), key), -1.0)  # [B, T]
    top = tf.math.top_k(scores, num_slots).indices  # [B, P], best first
    valid = tf.range(num_slots)[None, :] < budget[:, None]  # [B, P]
    return _sorted_slots(top, valid, candidates.shape[1])


def _sample_with_replacement(candidates, budget, num_slots, key):
    """P independent uniform draws over the candidates (the reference's tf.random.categorical)."""
    batch_size, seq_len = tf.shape(candidates)[0], candidates.shape[1]
    noise = _uniform([batch_size, num_slots, seq_len], key)  # [B, P, T]
    # The argmax of iid noise over the candidates is a uniform draw among them.
    draws = tf.argmax(
        tf.where(candidates[:, None, :], noise, -1.0), -1, output_type=tf.int32
    )  # [B, P]
    valid = tf.range(num_slots)[None, :] < budget[:, None]
    return _sorted_slots(draws, valid, seq_len)


def _sample_whole_words(candidates, word_start, budget, num_slots, key):
    """Whole words in random order while they fit the budget [B] (greedy, skipping misfits)."""
    batch_size, seq_len = tf.shape(candidates)[0], candidates.shape[1]
    previous = tf.concat([tf.zeros_like(candidates[:, :1]), candidates[:, :-1]], 1)
    # A piece right after a special token starts a word too (e.g. a word cut by truncation).
    starts = candidates & (word_start | ~previous)  # [B, T]
    # Word index of each candidate token; other tokens go to the extra slot T.
    word_ids = tf.where(candidates, tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1, seq_len)
    flat_ids = word_ids + (seq_len + 1) * tf.range(batch_size)[:, None]
    lengths = tf.math.unsorted_segment_sum(
        tf.cast(candidates, tf.int32), flat_ids, batch_size * (seq_len + 1)
    )
    lengths = tf.reshape(lengths, [batch_size, seq_len + 1])[:, :seq_len]  # [B, W=T], 0: no word
    shortest = tf.reduce_min(tf.where(lengths > 0, lengths, num_slots), -1)  # [B]
    remaining = tf.minimum(tf.maximum(budget, shortest), num_slots)  # [B]
    priority = _uniform([batch_size, seq_len], key)  # [B, W], lowest goes first

    # Each step takes the first word (by priority) that still fits. A word skipped earlier never
    # fits later since the remaining budget only shrinks, so this is the greedy pass in random
    # order. Every step takes at least one token, so P steps suffice.
    def take_next(step, taken, remaining):
        fits = (lengths > 0) & ~taken & (lengths <= remaining[:, None])  # [B, W]
        first = tf.argmin(tf.where(fits, priority, 2.0), -1, output_type=tf.int32)  # [B]
        picked = (tf.range(seq_len)[None, :] == first[:, None]) & tf.reduce_any(
            fits, -1, keepdims=True
        )
        return step + 1, taken | picked, remaining - tf.reduce_sum(tf.where(picked, lengths, 0), -1)

    _, taken, _ = tf.while_loop(
        lambda step, *_: step < num_slots,
        take_next,
        (tf.constant(0), tf.zeros_like(candidates), remaining),
    )
    selected = candidates & tf.gather(taken, tf.minimum(word_ids, seq_len - 1), batch_dims=1)
    # top_k on T - position lists the selected positions in ascending order.
    keys = tf.where(selected, seq_len - tf.range(seq_len)[None, :], 0)  # [B, T]
    top = tf.math.top_k(keys, num_slots).values  # [B, P]
    valid = top > 0
    return tf.where(valid, seq_len - top, 0), valid


def mask_inputs(
    input_ids,
    input_mask,
    seed,
    *,
    mask_prob,
    max_predictions_per_seq,
    mask_id,
    special_ids,
    strategy="uniform",
    is_word_start=None,
    continuation_table=None,
    mask_token_prob=0.85,
    random_token_prob=0.0,
    vocab_size=None,
    with_replacement=False,
):
    """Chooses and corrupts the positions a masked LM predicts (see the module docstring).

    Args:
      input_ids: [B, T] int token ids; T must be static.
      input_mask: [B, T] 1 for real tokens, 0 for padding.
      seed: [2] int32/int64 stateless key, e.g. from `training.seeds.derive_seed`.
      mask_prob: fraction of the candidate tokens to mask.
      max_predictions_per_seq: P, the static number of prediction slots (at most T).
      mask_id: id of [MASK].
      special_ids: ids never masked ([CLS], [SEP], [MASK], the padding id).
      strategy: "uniform" or "whole_word".
      is_word_start: optional [B, T] 1/0 word-start feature; wins over `continuation_table`.
      continuation_table: optional [vocab_size] table, nonzero for `##` pieces.
      mask_token_prob: probability that a chosen token becomes [MASK].
      random_token_prob: probability that it becomes a random id in [0, vocab_size).
      vocab_size: needed when random_token_prob > 0.
      with_replacement: sample like the reference (uniform strategy only).

    Returns:
      dict of `masked_input_ids` [B, T] (dtype of input_ids), `masked_lm_positions` [B, P] int32
      (ascending, padded with 0), `masked_lm_ids` [B, P] (original ids, 0 in padding slots) and
      `masked_lm_weights` [B, P] float32 (1.0 for real slots).
    """
    num_slots, seq_len = max_predictions_per_seq, input_ids.shape[1]
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "whole_word" and is_word_start is None and continuation_table is None:
        raise ValueError("whole_word masking needs is_word_start or continuation_table")
    if strategy == "whole_word" and with_replacement:
        raise ValueError("with_replacement only applies to the uniform strategy")
    if seq_len is None or not 0 < num_slots <= seq_len:
        raise ValueError(
            f"need a static sequence length >= max_predictions_per_seq={num_slots}, got {seq_len}"
        )
    if not 0.0 < mask_prob <= 1.0:
        raise ValueError(f"mask_prob must be in (0, 1], got {mask_prob}")
    if min(mask_token_prob, random_token_prob) < 0 or mask_token_prob + random_token_prob > 1:
        raise ValueError("mask_token_prob and random_token_prob must be >= 0 and sum to at most 1")
    if random_token_prob > 0 and not vocab_size:
        raise ValueError("random_token_prob > 0 needs vocab_size")

    select_key, corrupt_key, token_key = tf.unstack(
        tf.random.experimental.stateless_split(seed, 3, alg=_ALG)
    )
    candidates = tf.cast(input_mask, tf.bool)  # [B, T]
    for special_id in special_ids:
        candidates &= tf.not_equal(input_ids, special_id)
    num_candidates = tf.reduce_sum(tf.cast(candidates, tf.int32), -1)  # [B]
    if with_replacement:
        num_tokens = tf.reduce_sum(tf.cast(tf.cast(input_mask, tf.bool), tf.int32), -1)
        budget = _budget(num_tokens, mask_prob, num_slots, num_candidates > 0)
        positions, valid = _sample_with_replacement(candidates, budget, num_slots, select_key)
    else:
        budget = _budget(num_candidates, mask_prob, num_slots, num_candidates > 0)
        if strategy == "uniform":
            positions, valid = _sample_uniform(candidates, budget, num_slots, select_key)
        else:
            if is_word_start is not None:
                word_start = tf.cast(is_word_start, tf.bool)
            else:
                word_start = ~tf.cast(tf.gather(continuation_table, input_ids), tf.bool)
            positions, valid = _sample_whole_words(
                candidates, word_start, budget, num_slots, select_key
            )

    # positions, valid: [B, P]
    draw = _uniform(tf.shape(positions), corrupt_key)
    codes = tf.where(
        draw < mask_token_prob,
        _MASK,
        tf.where(draw < mask_token_prob + random_token_prob, _RANDOM, _KEEP),
    )
    codes = tf.where(valid, codes, _KEEP)  # [B, P]
    batch_index = tf.broadcast_to(tf.range(tf.shape(positions)[0])[:, None], tf.shape(positions))
    token_codes = tf.tensor_scatter_nd_max(
        tf.zeros(tf.shape(input_ids), tf.int32), tf.stack([batch_index, positions], -1), codes
    )  # [B, T]
    masked_input_ids = tf.where(token_codes == _MASK, tf.cast(mask_id, input_ids.dtype), input_ids)
    if random_token_prob > 0:
        random_ids = tf.random.stateless_uniform(
            tf.shape(input_ids),
            token_key,
            minval=0,
            maxval=vocab_size,
            dtype=input_ids.dtype,
            alg=_ALG,
        )
        masked_input_ids = tf.where(token_codes == _RANDOM, random_ids, masked_input_ids)
    original_ids = tf.gather(input_ids, positions, batch_dims=1)
    return {
        "masked_input_ids": masked_input_ids,
        "masked_lm_positions": positions,
        "masked_lm_ids": tf.where(valid, original_ids, tf.zeros_like(original_ids)),
        "masked_lm_weights": tf.cast(valid, tf.float32),
    }


def scatter_update(sequence, updates, positions, weights=None, average_duplicates=False):
    """Writes updates [B, P(, D)] into sequence [B, T(, D)] at positions [B, P] where weights > 0.

    A position named by several slots (sampling with replacement) takes the last such slot's
    update, so the result is deterministic. One scatter-max of slot indices and one gather, both
    XLA-friendly.

    `average_duplicates=True` is the reference's `scatter_update` instead: the updates of a
    position are summed (`tf.scatter_nd`) and divided by their count, floor-divided for integer
    sequences. Equal updates (the same [MASK], the same original id) are unaffected, but two
    different sampled ids a and b write the unrelated id (a + b) // 2. `masking_with_replacement`
    uses it to reproduce the reference exactly, bug included.
    """
    if average_duplicates:
        return _scatter_mean(sequence, updates, positions, weights)
    slots = tf.broadcast_to(tf.range(tf.shape(positions)[1])[None, :], tf.shape(positions))
    if weights is not None:
        slots = tf.where(weights > 0, slots, -1)
    batch_index = tf.broadcast_to(tf.range(tf.shape(positions)[0])[:, None], tf.shape(positions))
    source = tf.tensor_scatter_nd_max(
        tf.fill(tf.shape(sequence)[:2], -1), tf.stack([batch_index, positions], -1), slots
    )  # [B, T]
    gathered = tf.gather(updates, tf.maximum(source, 0), batch_dims=1)  # [B, T(, D)]
    written = source >= 0
    if sequence.shape.rank == 3:
        written = written[:, :, None]
    return tf.where(written, gathered, sequence)


def _scatter_mean(sequence, updates, positions, weights):
    """`scatter_update` with duplicates averaged (floor-divided for integers), as the reference."""
    index = tf.stack(
        [
            tf.broadcast_to(tf.range(tf.shape(positions)[0])[:, None], tf.shape(positions)),
            positions,
        ],
        -1,
    )  # [B, P, 2]
    used = tf.ones(tf.shape(positions), tf.bool) if weights is None else weights > 0  # [B, P]
    updates = tf.cast(updates, sequence.dtype)
    used_updates = used[:, :, None] if sequence.shape.rank == 3 else used
    sums = tf.tensor_scatter_nd_add(
        tf.zeros_like(sequence), index, tf.where(used_updates, updates, tf.zeros_like(updates))
    )  # [B, T(, D)]
    counts = tf.tensor_scatter_nd_add(
        tf.zeros(tf.shape(sequence)[:2], sequence.dtype), index, tf.cast(used, sequence.dtype)
    )  # [B, T]
    if sequence.shape.rank == 3:
        counts = counts[:, :, None]
    divisor = tf.maximum(counts, tf.ones_like(counts))
    if sequence.dtype.is_integer:
        mean = tf.math.floordiv(sums, divisor)
    else:
        mean = sums / divisor
    return tf.where(counts > 0, mean, sequence)


def unmask(masked):
    """The original [B, T] ids from a `mask_inputs` result (the reference's `unmask`)."""
    return scatter_update(
        masked["masked_input_ids"],
        masked["masked_lm_ids"],
        masked["masked_lm_positions"],
        masked["masked_lm_weights"],
    )


def sample_from_softmax(logits, seed, temperature=1.0, disallow=None):
    """Samples ids [...] int32 from softmax(logits [..., V] / temperature) by the Gumbel-max trick.

    `disallow` (e.g. the one-hot original token, the reference's `disallow_correct`) subtracts 1000
    from those logits, so they are never sampled in practice. The reference returns the one-hot of
    these ids; ids avoid a [..., V] tensor.
    """
    logits = tf.cast(logits, tf.float32) / temperature
    if disallow is not None:
        logits -= 1000.0 * tf.cast(disallow, tf.float32)
    uniform = _uniform(tf.shape(logits), seed)
    gumbel = -tf.math.log(-tf.math.log(uniform + 1e-9) + 1e-9)
    return tf.argmax(logits + gumbel, -1, output_type=tf.int32)


def continuation_table(continuation_ids, vocab_size):
    """The [vocab_size] int32 table `mask_inputs` reads: 1 at the `continuation_ids` (`##`
    pieces), 0 elsewhere."""
    table = np.zeros(vocab_size, np.int32)
    table[list(continuation_ids)] = 1
    return tf.constant(table)


def mask_features(features, seed, settings, mask_id, special_ids, table=None):
    """`mask_inputs` on a batch of features (`input_ids`, `input_mask`, optional
    `is_word_start`) with the masking hparams of `settings`, which has them by their config names
    (`mask_prob`, `max_predictions_per_seq`, `mask_strategy`, `masking_with_replacement`): a
    pre-training or distillation config, or a `PretrainingModel`. `table`: a
    `continuation_table` for whole-word masking without `is_word_start`."""
    return mask_inputs(
        features["input_ids"],
        features["input_mask"],
        seed,
        mask_prob=settings.mask_prob,
        max_predictions_per_seq=settings.max_predictions_per_seq,
        mask_id=mask_id,
        special_ids=special_ids,
        strategy=settings.mask_strategy,
        is_word_start=features.get("is_word_start"),
        continuation_table=table,
        with_replacement=settings.masking_with_replacement,
    )
