"""Every pre-training switch changes the computation the way its doc says (issue 11), checked
through `PretrainingConfig` -> `build_pretraining_model` / `create_optimizer`, not only that
training runs. Tiny models, no training loop."""

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.model import build_pretraining_model
from electra_tf.pretraining.trainer import create_optimizer

VOCAB = 40
MASK, SPECIAL = 4, (0, 2, 3, 4)
CONTINUATION = list(range(30, 40))  # ids 30..39 are "##" pieces
TINY = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)


def _model(**hparams):
    settings = dict(model_hparam_overrides=TINY, vocab_size=VOCAB, max_seq_length=20)
    settings.update(embedding_size=16, generator_hidden_size=0.5)
    settings.update(hparams)
    config = PretrainingConfig("m", "/unused", **settings)
    model = build_pretraining_model(config, MASK, SPECIAL, CONTINUATION)
    model.build_all()
    return model, config


def _features(batch=4, length=20, real=16):
    rng = np.random.RandomState(0)
    ids = rng.randint(13, 30, size=(batch, length)).astype(np.int32)  # 12 only in the word below
    ids[:, 0], ids[:, real - 1] = 2, 3  # [CLS] ... [SEP]
    ids[:, real:] = 0
    ids[:, 3:6] = [12, 31, 32]  # a word of three pieces
    mask = (np.arange(length) < real).astype(np.int32)[None].repeat(batch, 0)
    return {
        "input_ids": tf.constant(ids),
        "input_mask": tf.constant(mask),
        "segment_ids": tf.zeros_like(mask),
    }


def _run(model, seed=(1, 2)):
    return model.compute(_features(), tf.constant(seed, tf.int64), training=False)


@pytest.mark.parametrize("mask_prob", [0.15, 0.4])
def test_mask_prob_sets_the_number_of_masked_tokens(mask_prob):
    model, config = _model(mask_prob=mask_prob)
    out = _run(model)
    candidates = 16 - 2  # real tokens minus [CLS] and [SEP]
    expected = min(config.max_predictions_per_seq, round(mask_prob * candidates))
    assert out["masked_lm_weights"].numpy().sum(-1).tolist() == [expected] * 4
    assert out["masked_lm_ids"].shape[1] == int((mask_prob + 0.005) * 20)


def test_gen_and_disc_weights_set_the_loss_mix():
    for gen_weight, disc_weight in ((1.0, 50.0), (2.0, 7.0)):
        model, _ = _model(gen_weight=gen_weight, disc_weight=disc_weight)
        out = _run(model)
        expected = gen_weight * out["mlm_loss"] + disc_weight * out["disc_loss"]
        np.testing.assert_allclose(out["loss"], expected, rtol=1e-6)


def test_temperature_and_disallow_correct_change_the_sampled_tokens():
    cold, _ = _model(temperature=1e-4)
    out = _run(cold)
    weights = out["masked_lm_weights"].numpy() > 0
    # Near zero temperature, sampling is the argmax of the generator.
    np.testing.assert_array_equal(
        out["sampled_ids"].numpy()[weights], out["masked_lm_preds"].numpy()[weights]
    )
    strict, _ = _model(disallow_correct=True, temperature=1e-4)
    out = _run(strict)
    weights = out["masked_lm_weights"].numpy() > 0
    assert np.all(out["sampled_ids"].numpy()[weights] != out["masked_lm_ids"].numpy()[weights])
    assert np.all(out["disc_labels"].numpy().sum(-1) == weights.sum(-1))  # every masked one fake


def test_whole_word_masks_every_piece_of_a_word_together():
    model, _ = _model(mask_strategy="whole_word", mask_prob=0.3)
    for seed in range(20):
        out = _run(model, (seed, 0))
        positions = out["masked_lm_ids"].numpy()  # ids at the masked positions
        weights = out["masked_lm_weights"].numpy() > 0
        for row_ids, row_w in zip(positions, weights):
            chosen = set(row_ids[row_w].tolist())
            pieces = {12, 31, 32} & chosen
            assert pieces in (set(), {12, 31, 32}), (seed, chosen)


def _paths(model):
    return {v.path for v in model.weights}


def test_generator_switches_decide_which_variables_exist():
    default, config = _model()
    paths = _paths(default)
    assert any(p.startswith("generator/layer_0/") for p in paths)
    assert not any(p.startswith("generator/generator_embeddings") for p in paths)
    assert default.generator.config.hidden_size == 8  # generator_hidden_size 0.5 of 16
    assert default.generator.config.num_hidden_layers == 2
    half, _ = _model(generator_layers=0.5)
    assert half.generator.config.num_hidden_layers == 1
    tied, _ = _model(untied_generator=False)
    assert tied.generator is tied.discriminator
    assert not any(p.startswith("generator/") for p in _paths(tied))
    own, _ = _model(untied_generator_embeddings=True)
    assert any(p.startswith("generator/generator_embeddings/") for p in _paths(own))
    uniform, _ = _model(uniform_generator=True)
    assert uniform.generator is None and not any(p.startswith("generator") for p in _paths(uniform))
    mlm, _ = _model(electra_objective=False)
    assert not any(p.startswith("discriminator_predictions") for p in _paths(mlm))
    assert set(_run(mlm)) >= {"loss", "mlm_loss"} and "disc_loss" not in _run(mlm)


def test_embedding_size_adds_a_projection():
    narrow, _ = _model(embedding_size=8)
    assert narrow.discriminator.embeddings.embedding_size == 8
    assert any(p.startswith("electra/embeddings_project/") for p in _paths(narrow))
    wide, _ = _model()
    assert not any(p.startswith("electra/embeddings_project") for p in _paths(wide))
    assert any(p.startswith("generator/embeddings_project") for p in _paths(wide))  # 16 -> 8


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_lr_decay_power_and_warmup_shape_the_schedule(power):
    _, config = _model(
        learning_rate=1e-3, num_train_steps=100, num_warmup_steps=10, lr_decay_power=power
    )
    optimizer = create_optimizer(config)

    def rate_at(step):
        optimizer.iterations.assign(step)
        return float(optimizer.learning_rate)

    # ELECTRA's schedule: the polynomial decay times min(1, step / warm-up steps).
    assert rate_at(5) == pytest.approx(1e-3 * (1 - 5 / 100) ** power * 5 / 10, rel=1e-5)
    assert rate_at(60) == pytest.approx(1e-3 * (1 - 60 / 100) ** power, rel=1e-5)


@pytest.mark.parametrize("rate", [0.0, 0.1])
def test_weight_decay_rate_shrinks_kernels_with_a_zero_gradient(rate):
    model, config = _model(weight_decay_rate=rate, learning_rate=0.5, num_warmup_steps=0)
    optimizer = create_optimizer(config)
    kernel = next(
        v for v in model.trainable_variables if v.path.endswith("layer_0/intermediate/kernel")
    )
    bias = next(
        v for v in model.trainable_variables if v.path.endswith("layer_0/intermediate/bias")
    )
    bias.assign(tf.ones_like(bias))
    before_kernel, before_bias = kernel.numpy(), bias.numpy()
    optimizer.apply([tf.zeros_like(kernel), tf.zeros_like(bias)], [kernel, bias])
    lr = 0.5  # the rate at step 0 without warm-up
    np.testing.assert_allclose(kernel.numpy(), before_kernel * (1 - lr * rate), rtol=1e-5)
    np.testing.assert_array_equal(bias.numpy(), before_bias)  # no decay on biases
