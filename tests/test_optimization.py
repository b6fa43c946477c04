"""Tests for electra_tf.training.optimization."""

import contextlib
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.training import optimization as opt

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> shape; names follow the reference's variable scopes.
VARIABLES = {
    "electra/embeddings/word_embeddings": (5, 3),
    "electra/embeddings/LayerNorm/gamma": (3,),
    "electra/encoder/layer_0/attention/output/dense/kernel": (3, 3),
    "electra/encoder/layer_0/attention/output/dense/bias": (3,),
    "electra/encoder/layer_1/output/LayerNorm/beta": (3,),
    "electra/encoder/layer_1/output/dense/kernel": (3, 3),
    "task_specific/classify/kernel": (3, 2),
}


def make_variable(path, value):
    parts = path.split("/")
    with contextlib.ExitStack() as stack:
        for part in parts[:-1]:
            stack.enter_context(keras.name_scope(part))
        return keras.Variable(np.asarray(value, np.float32), name=parts[-1])


def make_problem(seed=0, grad_scale=1.0):
    rng = np.random.RandomState(seed)
    params = {k: rng.randn(*s).astype(np.float32) for k, s in VARIABLES.items()}
    grads = [
        {k: (grad_scale * rng.randn(*s)).astype(np.float32) for k, s in VARIABLES.items()}
        for _ in range(3)
    ]
    return params, grads


def reference_adam(
    params,
    grads_per_step,
    lrs,
    weight_decay_rate,
    multipliers=None,
    clip_norm=1.0,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-6,
):
    """numpy re-implementation of the reference's create_optimizer update."""
    params = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(x) for k, x in params.items()}
    for grads, lr in zip(grads_per_step, lrs):
        global_norm = np.sqrt(sum(np.sum(np.square(g.astype(np.float64))) for g in grads.values()))
        scale = clip_norm / max(global_norm, clip_norm)
        for name, grad in grads.items():
            grad = grad.astype(np.float64) * scale
            m[name] = beta_1 * m[name] + (1 - beta_1) * grad
            v[name] = beta_2 * v[name] + (1 - beta_2) * grad**2
            update = m[name] / (np.sqrt(v[name]) + epsilon)
            if weight_decay_rate > 0 and not any(
                s in name for s in ("LayerNorm", "layer_norm", "bias")
            ):
                update += weight_decay_rate * params[name]
            mult = 1.0 if multipliers is None else multipliers[name]
            params[name] = params[name] - lr * mult * update
    return params


def run_keras(optimizer, params, grads_per_step, jit_compile=None):
    variables = [make_variable(k, params[k]) for k in VARIABLES]
    optimizer.build(variables)

    def step(grads):
        optimizer.apply_gradients(zip(grads, variables))

    if jit_compile is not None:
        step = tf.function(step, jit_compile=jit_compile)
    for grads in grads_per_step:
        step([tf.constant(grads[k]) for k in VARIABLES])
    return {k: v.numpy() for k, v in zip(VARIABLES, variables)}


def assert_close(actual, expected):
    for name in VARIABLES:
        np.testing.assert_allclose(actual[name], expected[name], rtol=2e-5, atol=2e-6, err_msg=name)


@pytest.mark.parametrize("grad_scale", [0.05, 3.0])  # below / above the clip norm
def test_adam_weight_decay_matches_reference(grad_scale):
    params, grads = make_problem(grad_scale=grad_scale)
    optimizer = opt.AdamWeightDecay(learning_rate=0.01, weight_decay_rate=0.1)
    actual = run_keras(optimizer, params, grads)
    assert_close(actual, reference_adam(params, grads, [0.01] * 3, 0.1))
    assert int(optimizer.iterations.numpy()) == 3


def test_weight_decay_skipped_for_layer_norm_and_bias():
    params, _ = make_problem()
    zero_grads = [{k: np.zeros(s, np.float32) for k, s in VARIABLES.items()}]
    optimizer = opt.AdamWeightDecay(learning_rate=0.1, weight_decay_rate=0.5)
    actual = run_keras(optimizer, params, zero_grads)
    for name in VARIABLES:
        excluded = "LayerNorm" in name or name.endswith("bias")
        expected = params[name] if excluded else params[name] * (1 - 0.1 * 0.5)
        np.testing.assert_allclose(actual[name], expected, rtol=1e-6, err_msg=name)


def test_schedule_matches_reference_formula():
    lr, num_train_steps, warmup = 1e-3, 100, 10
    for power in (1.0, 0.5):
        schedule = opt.PolynomialDecayWithWarmup(lr, num_train_steps, warmup, lr_decay_power=power)
        for step in (0, 1, 5, 10, 37, 99, 100, 150):
            decayed = tf.compat.v1.train.polynomial_decay(
                lr,
                tf.constant(step),
                num_train_steps,
                end_learning_rate=0.0,
                power=power,
                cycle=False,
            )
            decayed = float(decayed() if callable(decayed) else decayed)
            expected = decayed * min(1.0, step / warmup)
            expected_by_hand = lr * (1 - min(step, num_train_steps) / num_train_steps) ** power
            expected_by_hand *= min(1.0, step / warmup)
            got = float(schedule(tf.constant(step, tf.int64)))
            assert got == pytest.approx(expected, rel=1e-5, abs=1e-12), (power, step)
            assert got == pytest.approx(expected_by_hand, rel=1e-5, abs=1e-12)
    # Fine-tuning style: warmup_proportion wins over a smaller warmup_steps.
    schedule = opt.PolynomialDecayWithWarmup(1.0, 100, num_warmup_steps=5, warmup_proportion=0.2)
    assert schedule.warmup_steps == 20
    assert float(schedule(10)) == pytest.approx(0.9 * 0.5)
    # No warmup: no division by zero.
    assert float(opt.PolynomialDecayWithWarmup(1.0, 10)(0)) == pytest.approx(1.0)
    restored = opt.PolynomialDecayWithWarmup.from_config(schedule.get_config())
    assert float(restored(10)) == pytest.approx(float(schedule(10)))


def reference_layer_lrs(n_layers, decay):
    """The reference's _get_layer_lrs, as multipliers keyed by name fragment."""
    depths = {"/embeddings/": 0, "task_specific/": n_layers + 2}
    for layer in range(n_layers):
        depths["encoder/layer_%d/" % layer] = layer + 1
    return {k: decay ** (n_layers + 2 - d) for k, d in depths.items()}


def test_layerwise_multipliers_both_modes():
    names = list(VARIABLES)
    paper = opt.layerwise_lr_multipliers(names, 2, 0.8)
    assert paper["electra/embeddings/word_embeddings"] == pytest.approx(0.8**3)
    assert paper["electra/embeddings/LayerNorm/gamma"] == pytest.approx(0.8**3)
    assert paper["electra/encoder/layer_0/attention/output/dense/kernel"] == pytest.approx(0.64)
    assert paper["electra/encoder/layer_1/output/dense/kernel"] == pytest.approx(0.8)
    assert paper["task_specific/classify/kernel"] == 1.0

    buggy = opt.layerwise_lr_multipliers(names, 2, 0.8, layerwise_lr_decay_reference_bug=True)
    reference = reference_layer_lrs(2, 0.8)
    for name in names:
        key = [k for k in reference if k in "/" + name]
        assert len(key) == 1, name
        assert buggy[name] == pytest.approx(reference[key[0]]), name
        if not name.startswith("task_specific"):
            assert buggy[name] == pytest.approx(paper[name] * 0.8), name

    assert set(opt.layerwise_lr_multipliers(names, 2, 0).values()) == {1.0}
    assert opt.layer_depth("electra/embeddings_project/kernel", 2) == 0
    assert opt.layer_depth("electra/encoder/layer_10/x", 12) == 11
    with pytest.raises(ValueError):
        opt.layer_depth("electra/encoder/layer_2/x", 2)


def test_layerwise_decay_applied_in_update():
    params, grads = make_problem(grad_scale=0.5)
    optimizer = opt.create_optimizer(
        0.02,
        1000,
        weight_decay_rate=0.01,
        warmup_steps=0,
        layerwise_lr_decay_power=0.8,
        n_transformer_layers=2,
    )
    actual = run_keras(optimizer, params, grads)
    multipliers = opt.layerwise_lr_multipliers(list(VARIABLES), 2, 0.8)
    lrs = [0.02 * (1 - step / 1000) for step in range(3)]
    assert_close(actual, reference_adam(params, grads, lrs, 0.01, multipliers))
    restored = opt.AdamWeightDecay.from_config(optimizer.get_config())
    restored.build([make_variable(k, params[k]) for k in VARIABLES])
    assert restored._variable_lr_multipliers == optimizer._variable_lr_multipliers


def test_runs_under_jit_compile():
    params, grads = make_problem(grad_scale=2.0)

    def new_optimizer():
        return opt.create_optimizer(
            0.01,
            10,
            weight_decay_rate=0.01,
            warmup_steps=2,
            layerwise_lr_decay_power=0.8,
            n_transformer_layers=2,
        )

    eager = run_keras(new_optimizer(), params, grads)
    compiled = run_keras(new_optimizer(), params, grads, jit_compile=True)
    assert_close(compiled, eager)
    schedule = opt.PolynomialDecayWithWarmup(0.01, 10, 2)
    lrs = [float(schedule(s)) for s in range(3)]
    multipliers = opt.layerwise_lr_multipliers(list(VARIABLES), 2, 0.8)
    assert_close(compiled, reference_adam(params, grads, lrs, 0.01, multipliers))


MIRRORED_SCRIPT = textwrap.dedent("""
    import numpy as np, tensorflow as tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from electra_tf.training import optimization as opt

    # Two steps whose global norms (1.5, then 0.5) straddle the clip norm: each
    # replica's half-gradient (0.75, 0.25) is below it, so clipping before the
    # all-reduce would not clip the first step at all.
    g1 = np.array([3.0, -4.0, 1.0], np.float32)
    g1 = g1 / np.linalg.norm(g1) * 1.5
    g2 = np.array([-1.0, 0.5, 2.0], np.float32)
    g2 = g2 / np.linalg.norm(g2) * 0.5
    init = np.array([1.0, 2.0, 3.0], np.float32)

    def single():
        v = keras.Variable(init, name="kernel")
        o = opt.AdamWeightDecay(0.1, weight_decay_rate=0.01)
        o.build([v])
        for g in (g1, g2):
            o.apply_gradients([(tf.constant(g), v)])
        return v.numpy()

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        v = keras.Variable(init, name="kernel")
        o = opt.AdamWeightDecay(0.1, weight_decay_rate=0.01)
        unbuilt = opt.AdamWeightDecay(0.1)
        o.build([v])

    @tf.function
    def step(g):
        def replica_fn():
            o.apply_gradients([(g / 2, v)])
        strategy.run(replica_fn)

    for g in (g1, g2):
        step(tf.constant(g))
    want = single()
    for value in strategy.experimental_local_results(v.value):
        np.testing.assert_allclose(value.numpy(), want, rtol=1e-5)
    assert int(o.iterations.numpy()) == 2

    @tf.function
    def bad_step():
        strategy.run(lambda: unbuilt.apply_gradients([(tf.constant(g1), v)]))
    try:
        bad_step()
    except RuntimeError as e:
        assert "optimizer.build" in str(e), e
    else:
        raise AssertionError("expected a RuntimeError for an unbuilt optimizer")
    print("MIRRORED_OK")
""")


def test_mirrored_strategy_clips_after_all_reduce():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "MIRRORED_OK" in result.stdout, result.stdout[-3000:] + result.stderr[-5000:]


def test_sparse_embedding_gradients_match_dense():
    table = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0
    ids = tf.constant([0, 2, 2])
    results = []
    for sparse in (True, False):
        variable = make_variable("electra/embeddings/word_embeddings", table)
        optimizer = opt.AdamWeightDecay(0.1, weight_decay_rate=0.01)
        optimizer.build([variable])
        with tf.GradientTape() as tape:
            rows = (
                tf.gather(variable.value, ids)
                if sparse
                else tf.matmul(tf.one_hot(ids, 4), variable.value)
            )
            loss = tf.reduce_sum(rows * rows)
        grad = tape.gradient(loss, variable.value)
        assert isinstance(grad, tf.IndexedSlices) == sparse
        optimizer.apply_gradients([(grad, variable)])
        results.append(variable.numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6)
