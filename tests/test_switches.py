"""Every pre-training switch changes the computation the way its doc says (issue 11), checked
through `PretrainingConfig` -> `build_pretraining_model` / `create_optimizer` / `Pretrainer`, not
only that training runs; and the switches both configs share (strategy, precision, TPU). Tiny
models; a train loop only for the loop's own switches."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_fidelity import _tiny_pretrainer

from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.pretraining import trainer as trainer_lib
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.model import build_pretraining_model
from electra_tf.pretraining.trainer import Pretrainer, create_optimizer
from electra_tf.training import distribution

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


def test_max_predictions_per_seq_caps_the_masked_positions():
    model, _ = _model(mask_prob=0.5, max_predictions_per_seq=3)
    out = _run(model)
    assert out["masked_lm_ids"].shape[1] == 3
    assert out["masked_lm_weights"].numpy().sum(-1).tolist() == [3] * 4  # not 0.5 * 14


def compiled_with_xla(function, *signature):
    """Whether the traced `function` calls a function XLA must compile (`jit_compile=True`)."""
    graph = function.get_concrete_function(*signature).graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    return any(n.attr["_XlaMustCompile"].b for n in nodes if "_XlaMustCompile" in n.attr)


def test_loop_and_eval_switches_drive_the_pretrainer(tmp_path, monkeypatch):
    pretrainer = _tiny_pretrainer(
        tmp_path,
        num_train_steps=5,
        iterations_per_loop=2,
        save_checkpoints_steps=3,
        keep_checkpoint_max=1,
        log_every_steps=100,
        train_batch_size=2,
        eval_batch_size=3,
        num_eval_steps=2,
    )
    batches = []
    loss_fn = pretrainer._loss_fn
    pretrainer._loss_fn = lambda f, *a: batches.append(f["input_ids"].shape[0]) or loss_fn(f, *a)
    train_loop = pretrainer.train_loop
    loop_fn, host_loops = train_loop._loop_fn, []
    train_loop._loop_fn = lambda n: host_loops.append(int(n)) or loop_fn(n)
    pretrainer.train()
    assert host_loops == [2, 1, 2] and set(batches) == {2}  # loops end at the checkpoint step 3
    ckpts = tf.train.get_checkpoint_state(pretrainer.config.model_dir).all_model_checkpoint_paths
    assert [int(c.rsplit("-", 1)[1]) for c in ckpts] == [5]  # keep_checkpoint_max 1 of 3, 5
    collected = {}
    metrics = trainer_lib._eval_metrics
    monkeypatch.setattr(
        trainer_lib, "_eval_metrics", lambda c, d: collected.update(c) or metrics(c, d)
    )
    assert pretrainer.evaluate()["global_step"] == 5
    assert [len(ids) for ids in collected["masked_lm_ids"]] == [3, 3]  # 2 batches of 3
    # jit_compile: the same loop, traced (not run), calls an XLA-compiled step.
    assert not compiled_with_xla(loop_fn, tf.TensorSpec([], tf.int32))
    values = dict(pretrainer.config.to_dict(), jit_compile=True)
    jitted = Pretrainer(PretrainingConfig.from_hparams(values, "jit", str(tmp_path)))
    assert compiled_with_xla(jitted.train_loop._loop_fn, tf.TensorSpec([], tf.int32))


def test_seed_do_train_and_do_eval(tmp_path):
    pretrainer = _tiny_pretrainer(tmp_path, do_train=False, do_eval=True)
    base = pretrainer.config.to_dict()

    def rerun(name, **hparams):
        config = PretrainingConfig.from_hparams(dict(base, **hparams), name, str(tmp_path))
        return trainer_lib.run_pretraining(config), config

    results, config = rerun("eval_only")
    assert results["global_step"] == 0 and tf.train.latest_checkpoint(config.model_dir) is None
    assert tf.io.gfile.exists(config.results_json)
    results, config = rerun("train_only", do_train=True, do_eval=False, num_train_steps=1)
    assert results is None and tf.train.latest_checkpoint(config.model_dir).endswith("ckpt-1")

    def weights(seed):
        config = PretrainingConfig.from_hparams(dict(base, seed=seed), "s", str(tmp_path))
        return Pretrainer(config).model.discriminator.weights[0].numpy()

    same = weights(0)  # a new model of the same seed, then of another seed
    np.testing.assert_array_equal(same, pretrainer.model.discriminator.weights[0].numpy())
    assert not np.array_equal(same, weights(1))


def _configs(**hparams):
    return [
        PretrainingConfig("m", "/unused", **hparams),
        FinetuningConfig("m", "/unused", task_names=["rte"], init_checkpoint=None, **hparams),
    ]


@pytest.mark.parametrize("index", [0, 1], ids=["pretraining", "finetuning"])
def test_strategy_precision_and_tpu_keys_reach_the_strategy(index, monkeypatch):
    one_device = distribution.strategy_for(_configs(strategy="cpu")[index])
    assert isinstance(one_device, tf.distribute.MirroredStrategy)
    assert one_device.extended.worker_devices == ("/job:localhost/replica:0/task:0/device:CPU:0",)
    try:
        distribution.strategy_for(_configs(mixed_precision="bfloat16", strategy="cpu")[index])
        dense = keras.layers.Dense(2)
        dense.build((None, 3))
        assert (dense.kernel.dtype, dense.compute_dtype) == ("float32", "bfloat16")
    finally:
        distribution.set_precision_policy(None)
    asked = []

    def resolver(**kwargs):
        asked.append(kwargs)
        raise RuntimeError("no TPU here")

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", resolver)
    tpu = dict(tpu_name="my-tpu", tpu_zone="zone-a", gcp_project="proj")
    for hparams in (dict(use_tpu=True), tpu, dict(strategy="tpu")):
        with pytest.raises(RuntimeError, match="no TPU here"):
            distribution.strategy_for(_configs(**hparams)[index])
    local = dict(tpu="local", zone=None, project=None)
    assert asked == [local, dict(tpu="my-tpu", zone="zone-a", project="proj"), local]
