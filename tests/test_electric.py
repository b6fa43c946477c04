"""Electric: the original code's checkpoint and step reproduced to 1e-5, the two-tower cloze
generator sees each token's context but never the token, the step compiles with XLA, a tiny model
trains through `run_pretraining` and reports the reference's metrics."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_ELECTRA_HPARAMS, shared_path

from electra_tf.conversion import reference
from electra_tf.modeling import networks
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.model import ElectricModel, build_pretraining_model
from electra_tf.pretraining.trainer import EVAL_METRICS, run_pretraining

ELECTRIC = {"electric_objective": True, "two_tower_generator": True, "electra_objective": False}
TINY = {**TINY_ELECTRA_HPARAMS, "generator_hidden_size": 0.5}


def _golden():
    folder = shared_path("golden", "electric")
    with open(os.path.join(folder, "pretrain_hparams.json")) as f:
        hparams = json.load(f)
    expected = dict(np.load(os.path.join(folder, "expected.npz")))
    return folder, hparams, expected


def test_golden_electric_step_reproduced(caplog, tmp_path):
    folder, hparams, expected = _golden()
    model = reference.load_reference_checkpoint(
        folder, hparams, vocab_file=os.path.join(folder, "vocab.txt")
    )
    assert isinstance(model, ElectricModel) and model.electric_objective
    # One to one: every variable of the original checkpoint is one of ours, and back.
    ours = {
        reference.reference_name(v.path)
        for v in model.variables
        if not reference.is_rng_state(v.path)
    }
    theirs = {n for n, _ in tf.train.list_variables(folder) if n != "global_step"}
    assert ours == theirs
    assert not [r for r in caplog.records if "not converted" in r.getMessage()]

    features = {k: tf.constant(expected[k]) for k in ("input_ids", "input_mask", "segment_ids")}
    positions = tf.constant(expected["masked_lm_positions"])
    weights = tf.constant(expected["masked_lm_weights"])
    masked = {
        "masked_lm_positions": positions,
        "masked_lm_ids": tf.gather(features["input_ids"], positions, batch_dims=1)
        * tf.cast(weights, tf.int32),
        "masked_lm_weights": weights,
    }
    out = model.compute_masked(
        features, masked, training=False, fake_input_ids=tf.constant(expected["fake_input_ids"])
    )
    errors = {"cloze_logits": model.cloze_logits(features).numpy() - expected["cloze_logits"]}
    for name, key in [
        ("disc_probs", "disc_probs"),
        ("disc_per_example_loss", "disc_per_example_loss"),
        ("disc_loss", "disc_loss"),
        ("cloze_loss", "cloze_loss"),
        ("mlm_loss", "mlm_loss"),
        ("total_loss", "loss"),
    ]:
        errors[name] = out[key].numpy() - expected[name]
    worst = {k: float(np.max(np.abs(v))) for k, v in errors.items()}
    assert max(worst.values()) < 1e-5, worst
    np.testing.assert_array_equal(out["disc_labels"].numpy(), expected["disc_labels"])
    # Converted to a run_pretraining.py model directory (what `electra-convert --from reference
    # --to ours` writes) and read back: the same step.
    target = str(tmp_path / "models" / "electric")
    reference.save_model_dir(model, target, vocab_file=os.path.join(folder, "vocab.txt"))
    again = reference.load_model_dir(target, os.path.join(target, "vocab.txt")).compute_masked(
        features, masked, training=False, fake_input_ids=tf.constant(expected["fake_input_ids"])
    )
    np.testing.assert_allclose(again["loss"].numpy(), expected["total_loss"], rtol=1e-6)
    np.testing.assert_allclose(again["disc_probs"].numpy(), expected["disc_probs"], atol=1e-6)
    # A wrong objective fails the same check: without the log q + log-odds correction (ELECTRA's
    # logit) the probabilities are far off, and so is a cloze model that sees its own token.
    electra = reference.load_reference_checkpoint(
        folder,
        {**hparams, "electric_objective": False, "electra_objective": True},
        vocab_file=os.path.join(folder, "vocab.txt"),
    )
    plain = electra.compute_masked(
        features, masked, training=False, fake_input_ids=tf.constant(expected["fake_input_ids"])
    )
    assert np.max(np.abs(plain["disc_probs"].numpy() - expected["disc_probs"])) > 0.1
    # ... which is ELECTRA with the cloze generator: its labels and its uncorrected logit.
    fake = expected["fake_input_ids"]
    np.testing.assert_array_equal(plain["disc_labels"].numpy(), fake != expected["input_ids"])
    logits = electra({**features, "input_ids": tf.constant(fake)}).numpy()
    np.testing.assert_allclose(plain["disc_probs"].numpy(), 1 / (1 + np.exp(-logits)), atol=1e-6)
    np.testing.assert_allclose(plain["cloze_loss"].numpy(), expected["cloze_loss"], atol=1e-5)


def test_towers_see_both_sides_but_never_the_token_itself():
    config = PretrainingConfig("m", "/d", vocab_size=40, max_seq_length=10, **ELECTRIC, **TINY)
    model = build_pretraining_model(config, mask_id=4, special_ids=(0, 2, 3, 4))
    model.build_all()
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 40, size=(1, 10)).astype(np.int32)
    features = {
        "input_ids": tf.constant(ids),
        "input_mask": tf.ones([1, 10], tf.int32),
        "segment_ids": tf.zeros([1, 10], tf.int32),
    }
    base = model.cloze_logits(features).numpy()[0]
    t = 4
    changed = ids.copy()
    changed[0, t] = 5 if ids[0, t] != 5 else 6
    moved = model.cloze_logits({**features, "input_ids": tf.constant(changed)}).numpy()[0]
    diff = np.abs(moved - base).max(-1)  # [T]
    assert diff[t] == 0  # q(x_t | ...) does not depend on x_t
    # Every position but the two ends (which wrap around) sees token t from one side or the other.
    assert np.all(diff[1:t] > 0) and np.all(diff[t + 1 : -1] > 0)
    assert networks.GENERATOR_LTR in {v.path.split("/")[0] for v in model.variables}


def test_electric_step_compiles_with_xla_and_matches_eager():
    config = PretrainingConfig(
        "m", "/d", vocab_size=40, max_seq_length=12, mask_prob=0.25, **ELECTRIC, **TINY
    )
    model = build_pretraining_model(config, mask_id=4, special_ids=(0, 2, 3, 4))
    model.build_all()
    rng = np.random.default_rng(1)
    ids = rng.integers(5, 40, size=(3, 12)).astype(np.int32)
    ids[:, 0], ids[:, -1] = 2, 3
    features = {
        "input_ids": tf.constant(ids),
        "input_mask": tf.constant(np.array([[1] * 12, [1] * 12, [1] * 8 + [0] * 4], np.int32)),
        "segment_ids": tf.zeros([3, 12], tf.int32),
    }

    def step(seed):  # no dropout, so that two runs draw the same
        with tf.GradientTape() as tape:
            out = model.compute(features, seed, training=False)
        grads = tape.gradient(out["loss"], model.trainable_variables)
        return out["loss"], out["disc_probs"], tf.linalg.global_norm(grads)

    seed = tf.constant([3, 7], tf.int64)
    compiled = tf.function(step, jit_compile=True)
    loss, probs, norm = compiled(seed)
    eager_loss, eager_probs, eager_norm = step(seed)
    assert np.isfinite(loss.numpy()) and norm.numpy() > 0
    np.testing.assert_allclose(loss.numpy(), eager_loss.numpy(), rtol=1e-4)
    np.testing.assert_allclose(probs.numpy(), eager_probs.numpy(), atol=1e-5)
    np.testing.assert_allclose(norm.numpy(), eager_norm.numpy(), rtol=1e-3)
    # The cloze model is trained by the cloze loss only: the discriminator's loss sends it no
    # gradient through log q (stop_gradient, as the reference).
    with tf.GradientTape() as tape:
        out = model.compute(features, seed, training=False)
    grads = tape.gradient(out["disc_loss"], model.generator_ltr.trainable_variables[-4:])
    assert all(g is None or float(tf.reduce_max(tf.abs(g))) == 0.0 for g in grads)


def test_tiny_electric_trains_through_run_pretraining(tmp_path):
    from test_pretraining import _config, _synthetic_data

    data_dir = str(tmp_path)
    _synthetic_data(data_dir)
    config = _config(data_dir, "electric", **ELECTRIC, **TINY, do_eval=True)
    results = run_pretraining(config)
    assert set(EVAL_METRICS) <= set(results) and results["global_step"] == 6
    assert all(np.isfinite(results[k]) for k in EVAL_METRICS)
    # Electric labels every masked position fake: recall's denominator is the masked count, and
    # the log-odds prior log(0.15 / 0.85) keeps an untrained discriminator predicting "real".
    assert 0.0 <= results["disc_recall"] <= 1.0 and results["disc_accuracy"] > 0.5
    saved = reference.load_model_dir(config.model_dir)
    assert isinstance(saved, ElectricModel)
    assert {"generator_ltr", "generator_rtl", "cloze_predictions"} <= {
        v.path.split("/")[0] for v in saved.variables
    }
    with open(config.results_json) as f:
        assert json.load(f)["global_step"] == 6


def test_get_config_round_trip_keeps_sharing_and_directions():
    config = PretrainingConfig("m", "/d", vocab_size=40, max_seq_length=8, **ELECTRIC, **TINY)
    model = build_pretraining_model(config, mask_id=4, special_ids=(0, 2, 3, 4))
    clone = ElectricModel.from_config(model.get_config())
    assert clone.generator_ltr.attention_direction == "ltr"
    assert clone.generator_rtl.attention_direction == "rtl"
    assert clone.generator_rtl.embeddings is clone.discriminator.embeddings
    assert clone.cloze_head.embeddings is clone.discriminator.embeddings
    assert clone.electric_objective and clone.mask_prob == model.mask_prob
    untied = build_pretraining_model(
        PretrainingConfig(
            "m",
            "/d",
            vocab_size=40,
            max_seq_length=8,
            untied_generator_embeddings=True,
            **ELECTRIC,
            **TINY,
        ),
        mask_id=4,
        special_ids=(0, 2, 3, 4),
    )
    untied.build_all()
    paths = {v.path for v in untied.variables}
    assert "generator_ltr/embeddings/word_embeddings" in paths
    assert "generator_rtl/embeddings/word_embeddings" in paths
    clone = ElectricModel.from_config(untied.get_config())
    assert clone.generator_ltr.embeddings is not clone.discriminator.embeddings
    with pytest.raises(ValueError, match="attention_direction"):
        networks.TransformerEncoder(model.discriminator.config, attention_direction="up")
