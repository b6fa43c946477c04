"""In-graph masking: exact counts, candidates, whole words, stateless keys, XLA == eager."""

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.pretraining import masking
from electra_tf.training import seeds

PAD, CLS, SEP, MASK = 0, 2, 3, 4
SPECIAL = (PAD, CLS, SEP, MASK)
FIRST_PIECE, VOCAB = 60, 100  # ids 5..59 start words, 60..99 are "##" continuation pieces
TABLE = tf.constant(np.arange(VOCAB) >= FIRST_PIECE)


def _batch(seed, batch_size, seq_len):
    """Random [CLS] a [SEP] (b [SEP]) rows of random lengths (0 too), a few [MASK]s, zero padding."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((batch_size, seq_len), np.int32)
    for row in ids:
        n = rng.integers(0, seq_len + 1)
        row[:n] = rng.integers(5, VOCAB, n)
        if n:
            row[0] = CLS
        if n > 1:
            row[n - 1] = SEP
        if n > 4:
            row[rng.integers(1, n - 1)] = SEP
            row[rng.integers(1, n - 1)] = MASK
    return ids, (np.arange(seq_len) < (ids != PAD).sum(1, keepdims=True)).astype(np.int32)


def _candidates(ids, mask):
    return (mask > 0) & ~np.isin(ids, SPECIAL)


def _budget(count, mask_prob, num_slots):
    wanted = np.round(np.float32(mask_prob) * count.astype(np.float32)).astype(np.int64)
    return np.where(count > 0, np.clip(wanted, 1, num_slots), 0)


def _mask(ids, mask, seed, **kwargs):
    kwargs.setdefault("mask_id", MASK)
    kwargs.setdefault("special_ids", SPECIAL)
    out = masking.mask_inputs(tf.constant(ids), tf.constant(mask), seed, **kwargs)
    return {k: v.numpy() for k, v in out.items()}


def _check_layout(out, ids, mask, unique=True):
    """Valid slots first, on candidates, ascending, padded with 0; only they may change."""
    weights, positions = out["masked_lm_weights"], out["masked_lm_positions"]
    valid = weights > 0
    assert set(np.unique(weights)) <= {0.0, 1.0}
    assert np.all(valid[:, :-1] >= valid[:, 1:])
    assert np.all(positions[~valid] == 0) and np.all(out["masked_lm_ids"][~valid] == 0)
    rows = np.arange(len(ids))[:, None]
    assert np.all(_candidates(ids, mask)[rows, positions][valid])
    np.testing.assert_array_equal(out["masked_lm_ids"][valid], ids[rows, positions][valid])
    steps = np.diff(positions, axis=1)[valid[:, 1:]]
    assert np.all(steps > 0) if unique else np.all(steps >= 0)
    chosen = np.zeros(ids.shape, bool)
    chosen[np.broadcast_to(rows, positions.shape)[valid], positions[valid]] = True
    changed = out["masked_input_ids"] != ids
    assert not np.any(changed & ~chosen)
    return chosen, changed


@pytest.mark.parametrize("mask_prob", [0.15, 0.5])
def test_uniform_masks_exact_count_of_distinct_candidates(mask_prob):
    ids, mask = _batch(0, 96, 48)
    for step in range(3):
        out = _mask(
            ids, mask, seeds.derive_seed(1, step), mask_prob=mask_prob, max_predictions_per_seq=6
        )
        chosen, changed = _check_layout(out, ids, mask)
        expected = _budget(_candidates(ids, mask).sum(1), mask_prob, 6)
        np.testing.assert_array_equal(out["masked_lm_weights"].sum(1), expected)
        np.testing.assert_array_equal(chosen.sum(1), expected)
        assert np.all(out["masked_input_ids"][changed] == MASK)
    # Rows without candidates, rows rounding to 0 (masked once) and the cap P were all exercised.
    assert expected.min() == 0 and 1 in expected and expected.max() == 6


def _corruption_rates(out, ids):
    rows = np.arange(len(ids))[:, None]
    valid = out["masked_lm_weights"] > 0
    new = out["masked_input_ids"][rows, out["masked_lm_positions"]][valid]
    old = ids[rows, out["masked_lm_positions"]][valid]
    return len(new), np.mean(new == MASK), np.mean((new != MASK) & (new != old))


def test_mask_token_split_matches_probabilities():
    ids, mask = _batch(1, 512, 64)
    out = _mask(ids, mask, seeds.derive_seed(2), mask_prob=0.25, max_predictions_per_seq=16)
    n, to_mask, to_random = _corruption_rates(out, ids)
    assert n > 3000 and abs(to_mask - 0.85) < 5 * np.sqrt(0.85 * 0.15 / n) and to_random == 0

    out = _mask(
        ids,
        mask,
        seeds.derive_seed(3),
        mask_prob=0.25,
        max_predictions_per_seq=16,
        mask_token_prob=0.8,
        random_token_prob=0.1,
        vocab_size=30000,
    )
    _check_layout(out, ids, mask)
    n, to_mask, to_random = _corruption_rates(out, ids)
    assert abs(to_mask - 0.8) < 5 * np.sqrt(0.8 * 0.2 / n)
    assert abs(to_random - 0.1) < 5 * np.sqrt(0.1 * 0.9 / n)
    assert out["masked_input_ids"].max() >= VOCAB  # random ids span the given vocabulary


def test_with_replacement_follows_the_reference():
    ids, mask = _batch(2, 128, 24)
    out = _mask(
        ids,
        mask,
        seeds.derive_seed(4),
        mask_prob=0.5,
        max_predictions_per_seq=12,
        with_replacement=True,
    )
    chosen, changed = _check_layout(out, ids, mask, unique=False)
    # The reference counts every real token ([CLS]/[SEP] included) and clips to [1, P].
    expected = _budget(mask.sum(1), 0.5, 12) * (_candidates(ids, mask).sum(1) > 0)
    np.testing.assert_array_equal(out["masked_lm_weights"].sum(1), expected)
    assert np.sum(chosen.sum(1) < expected) > 10  # duplicates collapse onto fewer tokens
    assert np.all(out["masked_input_ids"][changed] == MASK)


def _words(candidates, starts):
    """Lists of positions of each word: a candidate that starts a word or follows a non-candidate."""
    words = []
    for t in np.flatnonzero(candidates):
        if starts[t] or t == 0 or not candidates[t - 1]:
            words.append([])
        words[-1].append(t)
    return words


@pytest.mark.parametrize("feature", ["table", "is_word_start"])
def test_whole_word_masks_whole_words_greedily(feature):
    ids, mask = _batch(3, 96, 40)
    rng = np.random.default_rng(4)
    if feature == "table":
        starts, kwargs = ids < FIRST_PIECE, {"continuation_table": TABLE}
    else:
        starts = rng.random(ids.shape) < 0.4
        kwargs = {"is_word_start": tf.constant(starts.astype(np.int32))}
    num_slots = 8
    out = _mask(
        ids,
        mask,
        seeds.derive_seed(5),
        mask_prob=0.3,
        max_predictions_per_seq=num_slots,
        strategy="whole_word",
        **kwargs,
    )
    chosen, _ = _check_layout(out, ids, mask)
    candidates = _candidates(ids, mask)
    budgets = _budget(candidates.sum(1), 0.3, num_slots)
    multi_piece = 0
    for b in range(len(ids)):
        words = _words(candidates[b], starts[b])
        taken = [w for w in words if chosen[b, w].all()]
        assert all(chosen[b, w].all() or not chosen[b, w].any() for w in words)
        lengths = [len(w) for w in words]
        budget = min(max(budgets[b], min(lengths, default=0)), num_slots)
        used = chosen[b].sum()
        assert used <= budget and (used > 0 or not any(n <= num_slots for n in lengths))
        # Greedy: no word left out would still have fitted.
        assert all(len(w) > budget - used for w in words if not chosen[b, w].any())
        multi_piece += sum(len(w) > 1 for w in taken)
    assert multi_piece > 20


def test_same_key_same_masks_and_steps_differ():
    ids, mask = _batch(4, 16, 32)
    kwargs = {"mask_prob": 0.2, "max_predictions_per_seq": 6}
    first = _mask(ids, mask, seeds.derive_seed(9, 100, 0), **kwargs)
    again = _mask(ids, mask, seeds.derive_seed(9, 100, 0), **kwargs)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    for seed in (
        seeds.derive_seed(9, 101, 0),
        seeds.derive_seed(9, 100, 1),
        seeds.derive_seed(8, 100, 0),
    ):
        other = _mask(ids, mask, seed, **kwargs)
        assert not np.array_equal(first["masked_lm_positions"], other["masked_lm_positions"])


def test_jit_compiled_matches_eager():
    ids, mask = _batch(5, 32, 40)
    ids, mask = tf.constant(ids), tf.constant(mask)
    starts = tf.constant(np.random.default_rng(6).random((32, 40)) < 0.5, tf.int32)
    logits = tf.constant(np.random.default_rng(7).normal(size=(32, 8, 50)), tf.float32)
    common = dict(mask_prob=0.3, max_predictions_per_seq=8, mask_id=MASK, special_ids=SPECIAL)
    variants = [
        {},
        {"with_replacement": True},
        {"mask_token_prob": 0.8, "random_token_prob": 0.1, "vocab_size": VOCAB},
        {"strategy": "whole_word", "continuation_table": TABLE},
        {"strategy": "whole_word", "is_word_start": starts},
    ]

    def step(seed, global_step):
        key = seeds.derive_seed(seed, global_step)
        outs = [masking.mask_inputs(ids, mask, key, **common, **v) for v in variants]
        sampled = masking.sample_from_softmax(logits, key, temperature=0.7)
        return outs, masking.unmask(outs[2]), sampled

    eager = step(tf.constant(3), tf.constant(7, tf.int64))
    compiled = tf.function(step, jit_compile=True)(tf.constant(3), tf.constant(7, tf.int64))
    for want, got in zip(eager[0], compiled[0]):
        for key in want:
            np.testing.assert_array_equal(want[key].numpy(), got[key].numpy(), err_msg=key)
    np.testing.assert_array_equal(compiled[1].numpy(), ids.numpy())
    np.testing.assert_array_equal(eager[2].numpy(), compiled[2].numpy())


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_sample_from_softmax_distribution_and_disallow(temperature):
    logits = np.array([3.0, 1.0, 0.5, 0.0, -0.5, -1.0], np.float32)
    n = 20000
    disallow = tf.one_hot(tf.zeros([n], tf.int32), 6)
    ids = masking.sample_from_softmax(
        tf.tile(logits[None], [n, 1]),
        seeds.derive_seed(11),
        temperature=temperature,
        disallow=disallow,
    ).numpy()
    counts = np.bincount(ids, minlength=6)
    assert counts[0] == 0
    probs = np.exp(logits[1:] / temperature)
    expected = n * probs / probs.sum()
    chi_square = np.sum((counts[1:] - expected) ** 2 / expected)
    assert chi_square < 30  # 4 degrees of freedom: p < 1e-5


def test_scatter_update_and_unmask():
    sequence = tf.constant([[10, 11, 12, 13, 14], [20, 21, 22, 23, 24]])
    updates = tf.constant([[1, 2, 3], [4, 5, 6]])
    positions = tf.constant([[1, 3, 1], [0, 4, 2]])
    weights = tf.constant([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    np.testing.assert_array_equal(
        masking.scatter_update(sequence, updates, positions, weights).numpy(),
        [[10, 3, 12, 2, 14], [4, 21, 6, 23, 24]],
    )  # duplicate -> last slot; weight 0 skipped
    np.testing.assert_array_equal(
        masking.scatter_update(sequence, updates, positions).numpy()[1], [4, 21, 6, 23, 5]
    )
    vectors = tf.reshape(tf.range(30, dtype=tf.float32), [2, 5, 3])
    new = tf.fill([2, 3, 3], -1.0)
    got = masking.scatter_update(vectors, new, positions, weights).numpy()
    want = vectors.numpy()
    want[0, [1, 3]] = -1.0
    want[1, [0, 2]] = -1.0
    np.testing.assert_array_equal(got, want)

    ids, mask = _batch(6, 32, 24)
    for kwargs in (
        {},
        {"with_replacement": True},
        {"random_token_prob": 0.15, "vocab_size": VOCAB},
    ):
        out = masking.mask_inputs(
            tf.constant(ids),
            tf.constant(mask),
            seeds.derive_seed(12),
            mask_prob=0.3,
            max_predictions_per_seq=8,
            mask_id=MASK,
            special_ids=SPECIAL,
            **kwargs,
        )
        np.testing.assert_array_equal(masking.unmask(out).numpy(), ids)


def test_rejects_bad_arguments():
    ids, mask = tf.zeros([2, 8], tf.int32), tf.ones([2, 8], tf.int32)
    common = {"mask_id": MASK, "special_ids": SPECIAL, "mask_prob": 0.15}
    with pytest.raises(ValueError, match="is_word_start"):
        masking.mask_inputs(
            ids, mask, [0, 0], max_predictions_per_seq=2, strategy="whole_word", **common
        )
    with pytest.raises(ValueError, match="max_predictions_per_seq"):
        masking.mask_inputs(ids, mask, [0, 0], max_predictions_per_seq=9, **common)
    with pytest.raises(ValueError, match="vocab_size"):
        masking.mask_inputs(
            ids, mask, [0, 0], max_predictions_per_seq=2, random_token_prob=0.1, **common
        )
