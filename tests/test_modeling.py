"""Tests of electra_tf.modeling on tiny configs."""

import dataclasses
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_ENCODER

from electra_tf.modeling import (
    DiscriminatorHead,
    Dropout,
    Embeddings,
    EncoderConfig,
    MaskedLMHead,
    TransformerBlock,
    TransformerEncoder,
    gather_positions,
    sizes,
)

BATCH, SEQ = 2, 6


def tiny_config(**overrides):
    return EncoderConfig(**{**TINY_ENCODER, "vocab_size": 50, "embedding_size": 8, **overrides})


def make_inputs(seed=0):
    rng = np.random.default_rng(seed)
    lengths = [SEQ, 4]
    mask = np.array([[1] * n + [0] * (SEQ - n) for n in lengths], np.int32)
    return {
        "input_ids": tf.constant(rng.integers(1, 50, (BATCH, SEQ)) * mask, tf.int32),
        "input_mask": tf.constant(mask),
        "segment_ids": tf.constant([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 0, 0]], tf.int32),
    }


def np_layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def np_gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


@pytest.fixture
def mixed_bfloat16():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def test_config_dict_and_json_round_trip(tmp_path):
    config = EncoderConfig.from_dict(
        {"vocab_size": 50, "hidden_size": 16, "num_attention_heads": 2}
    )
    assert config.embedding_size == 16
    path = str(tmp_path / "config.json")
    config.to_json_file(path)
    assert EncoderConfig.from_json_file(path) == config
    # The resolved embedding width survives a change of hidden size.
    assert dataclasses.replace(config, hidden_size=8).embedding_size == 16


def test_layers_read_every_bert_key_under_its_layer_argument_name():
    # Distinct values, so that a key read under the wrong argument shows (the attention dropout
    # taken from hidden_dropout_prob, say).
    values = dict(hidden_act="relu", hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.2)
    config = EncoderConfig(vocab_size=50, hidden_size=16, num_attention_heads=4, **values)
    block = TransformerEncoder(config).blocks[0]
    assert (block.num_heads, block.activation) == (4, "relu")
    assert (block.dropout_rate, block.attention_dropout_rate) == (0.3, 0.2)
    config = dataclasses.replace(config, embedding_size=8, layer_norm_eps=1e-7)
    embeddings = Embeddings.from_encoder_config(config)
    assert (embeddings.embedding_size, embeddings.dropout_rate) == (8, 0.3)
    assert (embeddings.vocab_size, embeddings.layer_norm_eps) == (50, 1e-7)


def test_config_rejects_unknown_key_with_suggestion():
    with pytest.raises(ValueError, match="'hiden_size'.*'hidden_size'"):
        EncoderConfig.from_dict({"vocab_size": 50, "hiden_size": 16})
    with pytest.raises(ValueError, match="multiple"):
        EncoderConfig(vocab_size=50, hidden_size=10, num_attention_heads=4)


def test_encoder_and_head_shapes():
    config = tiny_config()
    encoder = TransformerEncoder(config)
    inputs = make_inputs()
    outputs = encoder(inputs)
    assert outputs["sequence_output"].shape == (BATCH, SEQ, 16)
    assert outputs["embedding_output"].shape == (BATCH, SEQ, 16)
    assert len(outputs["encoder_outputs"]) == 2
    np.testing.assert_array_equal(outputs["pooled_output"], outputs["sequence_output"][:, 0])
    np.testing.assert_array_equal(outputs["encoder_outputs"][-1], outputs["sequence_output"])

    assert DiscriminatorHead()(outputs["sequence_output"]).shape == (BATCH, SEQ)
    positions = tf.constant([[0, 2, 5], [1, 1, 3]], tf.int32)
    masked = gather_positions(outputs["sequence_output"], positions)
    assert masked.shape == (BATCH, 3, 16)
    np.testing.assert_array_equal(masked[1, 2], outputs["sequence_output"][1, 3])
    assert MaskedLMHead(encoder.embeddings)(masked).shape == (BATCH, 3, 50)


def test_padding_does_not_change_real_positions():
    encoder = TransformerEncoder(tiny_config())
    inputs = make_inputs()
    pad = tf.cast(1 - inputs["input_mask"], tf.int32)
    changed = dict(
        inputs,
        input_ids=inputs["input_ids"] + pad * 7,
        segment_ids=inputs["segment_ids"] * (1 - pad) + pad,
    )
    first = encoder(inputs)["sequence_output"].numpy()
    second = encoder(changed)["sequence_output"].numpy()
    real = inputs["input_mask"].numpy().astype(bool)
    assert not np.allclose(first[~real], second[~real])
    np.testing.assert_allclose(first[real], second[real], atol=1e-5)


def test_embeddings_shared_between_encoders():
    discriminator = TransformerEncoder(tiny_config(), name="discriminator")
    generator_config = tiny_config(hidden_size=8, num_attention_heads=1, intermediate_size=16)
    generator = TransformerEncoder(
        generator_config, embeddings=discriminator.embeddings, name="generator"
    )
    inputs = make_inputs()
    discriminator(inputs)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(generator(inputs)["sequence_output"] ** 2)
    shared = discriminator.embeddings
    assert generator.embeddings is shared
    for variable in shared.weights:
        assert any(variable is w for w in generator.weights)
    assert tape.gradient(loss, shared.word_embeddings) is not None
    # E == H for the generator here, so only the discriminator projects.
    assert generator.embeddings_project is None
    assert discriminator.embeddings_project is not None
    with pytest.raises(ValueError, match="wide"):
        TransformerEncoder(tiny_config(embedding_size=16), embeddings=shared)


@pytest.mark.parametrize("embedding_size", [8, 16])
def test_projection_iff_embedding_size_differs(embedding_size):
    encoder = TransformerEncoder(tiny_config(embedding_size=embedding_size))
    encoder.build()
    paths = [w.path for w in encoder.weights]
    has_projection = any("embeddings_project" in p for p in paths)
    assert has_projection == (embedding_size != 16)
    assert encoder.embeddings.word_embeddings.shape == (50, embedding_size)


def test_masked_lm_head_is_tied_to_word_embeddings():
    embeddings = Embeddings(vocab_size=50, embedding_size=8)
    head = MaskedLMHead(embeddings)
    hidden = tf.random.normal((BATCH, 3, 16))
    with tf.GradientTape() as tape:
        logits = head(hidden)
        loss = tf.reduce_sum(logits * tf.random.normal(logits.shape))
    gradient = tf.convert_to_tensor(tape.gradient(loss, embeddings.word_embeddings))
    assert np.abs(gradient.numpy()).sum() > 0
    # logits = LayerNorm(gelu(x W + b)) @ word_embeddings^T + output_bias.
    x = np_gelu(hidden.numpy() @ head.dense.kernel.numpy() + head.dense.bias.numpy())
    x = np_layer_norm(x, head.layer_norm.gamma.numpy(), head.layer_norm.beta.numpy(), 1e-12)
    expected = x @ embeddings.word_embeddings.numpy().T + head.output_bias.numpy()
    np.testing.assert_allclose(logits.numpy(), expected, atol=1e-5)


def test_masked_lm_head_gradient_never_holds_a_table_per_row():
    """The tied table's gradient is one matmul over all rows, not a [B, V, E] batch then a sum
    (a broadcast batch matmul's gradient: 0.8 GB and ~10% of an ELECTRA-tiny step)."""
    embeddings = Embeddings(vocab_size=50, embedding_size=8)
    head = MaskedLMHead(embeddings)
    hidden = tf.random.normal((BATCH, 3, 16))
    head(hidden)

    @tf.function
    def gradient(hidden):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(head(hidden) ** 2)
        return tape.gradient(loss, embeddings.word_embeddings)

    graph = gradient.get_concrete_function(hidden).graph
    shapes = [tuple(t.shape) for op in graph.get_operations() for t in op.outputs]
    assert (BATCH, 50, 8) not in shapes and (BATCH, 8, 50) not in shapes
    with tf.GradientTape() as tape:  # same values as the one-line definition
        x = head.layer_norm(head.dense(hidden))
        loss = tf.reduce_sum(
            (tf.einsum("bpe,ve->bpv", x, embeddings.word_embeddings) + head.output_bias) ** 2
        )
    expected = tape.gradient(loss, embeddings.word_embeddings)
    np.testing.assert_allclose(gradient(hidden).numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)


def test_embeddings_match_numpy():
    embeddings = Embeddings(vocab_size=50, embedding_size=8, max_position_embeddings=16)
    inputs = make_inputs()
    output = embeddings(inputs["input_ids"], inputs["segment_ids"]).numpy()
    summed = (
        embeddings.word_embeddings.numpy()[inputs["input_ids"].numpy()]
        + embeddings.position_embeddings.numpy()[:SEQ]
        + embeddings.token_type_embeddings.numpy()[inputs["segment_ids"].numpy()]
    )
    norm = embeddings.layer_norm
    expected = np_layer_norm(summed, norm.gamma.numpy(), norm.beta.numpy(), 1e-12)
    np.testing.assert_allclose(output, expected, atol=1e-5)


def test_transformer_block_matches_numpy():
    block = TransformerBlock(num_heads=2, intermediate_size=32)
    block.build((None, None, 16))
    # Weights of order 1 (not 0.02) so that every term matters, e.g. erf vs tanh GELU.
    rng = np.random.default_rng(1)
    for variable in block.weights:
        variable.assign(rng.normal(0.0, 0.5, variable.shape))
    x = tf.constant(rng.normal(size=(BATCH, SEQ, 16)), tf.float32)
    mask = make_inputs()["input_mask"]
    output = block(x, input_mask=mask).numpy()

    def w(variable):
        return variable.numpy()

    att = block.attention
    x, m = x.numpy(), mask.numpy()
    heads, size = 2, 8

    def split(layer):  # [B, T, H] -> [B, heads, T, size] via a plain [H, H] kernel.
        y = x @ w(layer.kernel).reshape(16, 16) + w(layer.bias).reshape(16)
        return y.reshape(BATCH, SEQ, heads, size).transpose(0, 2, 1, 3)

    q, k, v = split(att.query), split(att.key), split(att.value)
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size)
    scores += (1.0 - m[:, None, None, :]) * -10000.0
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(BATCH, SEQ, 16)
    attended = context @ w(att.output_dense.kernel).reshape(16, 16) + w(att.output_dense.bias)
    ln1 = block.attention_layer_norm
    h = np_layer_norm(x + attended, w(ln1.gamma), w(ln1.beta), 1e-12)
    ffn = np_gelu(h @ w(block.intermediate.kernel) + w(block.intermediate.bias))
    ffn = ffn @ w(block.output_dense.kernel) + w(block.output_dense.bias)
    ln2 = block.output_layer_norm
    expected = np_layer_norm(h + ffn, w(ln2.gamma), w(ln2.beta), 1e-12)
    np.testing.assert_allclose(output, expected, atol=1e-5)


def test_dropout_only_in_training():
    encoder = TransformerEncoder(tiny_config())
    inputs = make_inputs()
    first = encoder(inputs, training=False)["sequence_output"]
    np.testing.assert_array_equal(first, encoder(inputs)["sequence_output"])
    trained = encoder(inputs, training=True)["sequence_output"]
    assert not np.allclose(first, trained)


def test_get_config_round_trip():
    inputs = make_inputs()
    encoder = TransformerEncoder(tiny_config(), name="electra")
    sequence = encoder(inputs)["sequence_output"]
    layers = [
        (encoder, inputs),
        (encoder.blocks[0], sequence),
        (DiscriminatorHead(activation="relu"), sequence),
        (MaskedLMHead(encoder.embeddings), sequence),
    ]
    for layer, layer_inputs in layers:
        expected = layer(layer_inputs)
        clone = keras.layers.deserialize(keras.layers.serialize(layer))
        assert type(clone) is type(layer)
        assert clone.get_config() == layer.get_config()
        clone(layer_inputs)
        clone.set_weights(layer.get_weights())
        tf.nest.map_structure(
            lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), clone(layer_inputs), expected
        )
    assert TransformerEncoder.from_config(encoder.get_config()).config == encoder.config


def test_jit_compile_matches_eager():
    encoder = TransformerEncoder(tiny_config())
    head = DiscriminatorHead()
    inputs = make_inputs()

    def forward(features):
        return head(encoder(features)["sequence_output"])

    eager = forward(inputs)
    compiled = tf.function(forward, jit_compile=True)(inputs)
    np.testing.assert_allclose(compiled, eager, atol=1e-5)

    @tf.function(jit_compile=True)
    def train_gradients(features):
        with tf.GradientTape() as tape:
            logits = head(encoder(features, training=True)["sequence_output"], training=True)
            loss = tf.reduce_mean(logits**2)
        return tape.gradient(loss, encoder.trainable_variables + head.trainable_variables)

    gradients = train_gradients(inputs)
    assert all(g is not None and np.all(np.isfinite(tf.convert_to_tensor(g))) for g in gradients)


def test_mixed_bfloat16(mixed_bfloat16):
    encoder = TransformerEncoder(tiny_config())
    discriminator = DiscriminatorHead()
    generator = MaskedLMHead(encoder.embeddings)
    inputs = make_inputs()

    @tf.function(jit_compile=True)
    def forward(features):
        sequence = encoder(features, training=True)["sequence_output"]
        positions = tf.constant([[1, 2], [0, 3]], tf.int32)
        return sequence, discriminator(sequence), generator(gather_positions(sequence, positions))

    sequence, disc_logits, mlm_logits = forward(inputs)
    assert sequence.dtype == tf.bfloat16
    assert disc_logits.dtype == tf.float32 and mlm_logits.dtype == tf.float32
    assert mlm_logits.shape == (BATCH, 2, 50)
    assert np.all(np.isfinite(mlm_logits.numpy()))
    variables = encoder.weights + discriminator.weights + generator.weights
    assert all(v.dtype == "float32" for v in variables)


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_dropout_statistics_gradient_and_seed_state(jit_compile, dtype):
    """Drop probability `rate` (to 2^-16), kept values scaled by 1/(1-rate), independent
    draws per element and per call, gradient = the same mask, stream restored with the
    seed state (what checkpoints hold)."""
    layer = Dropout(0.1, seed=7, dtype=dtype)
    x = tf.ones([64, 4, 128, 129], dtype)  # odd size: one 16-bit half left over

    @tf.function(jit_compile=jit_compile)
    def forward_and_grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            total = tf.reduce_sum(tf.cast(y, tf.float32))
        return y, tape.gradient(total, x)

    state = layer.seed_generator.state.numpy()
    y, grad = (t.numpy().astype(np.float32) for t in forward_and_grad(x))
    dropped = y == 0
    n = dropped.size
    assert abs(dropped.mean() - 0.1) < 4 * math.sqrt(0.09 / n)
    np.testing.assert_allclose(y[~dropped], 1 / 0.9, rtol=1e-2 if dtype == "bfloat16" else 1e-6)
    np.testing.assert_array_equal(grad, y)  # d(sum y)/dx is the scaled mask itself
    # Neighbouring elements (the two halves of one random word) are independent.
    flat = dropped.reshape(-1)[: n - n % 2].reshape(-1, 2)
    both = (flat[:, 0] & flat[:, 1]).mean()
    assert abs(both - 0.01) < 4 * math.sqrt(0.01 / flat.shape[0])
    again = forward_and_grad(x)[0].numpy().astype(np.float32)
    assert 0.15 < ((again == 0) != dropped).mean() < 0.21  # a fresh mask each call
    layer.seed_generator.state.assign(state)
    np.testing.assert_array_equal(forward_and_grad(x)[0].numpy().astype(np.float32), y)


def test_dropout_identity_at_inference_and_rate_bounds():
    x = tf.random.normal([3, 5])
    np.testing.assert_array_equal(Dropout(0.5)(x, training=False), x)
    np.testing.assert_array_equal(Dropout(0.0)(x, training=True), x)
    np.testing.assert_array_equal(Dropout(1.0)(x, training=True), tf.zeros_like(x))
    with pytest.raises(ValueError, match="rate must be in"):
        Dropout(1.5)


def test_every_layer_config_names_every_constructor_argument():
    """`ConfigLayer` keeps each argument: a layer rebuilt from its config has the same settings."""
    import inspect

    from electra_tf.modeling import SelfAttention, SentenceHead, SpanQAHead, TaggingHead

    made = [
        Dropout(0.2, seed=3),
        Embeddings(50, 8, max_position_embeddings=32, dropout_rate=0.05),
        SelfAttention(2, 4, dropout_rate=0.3),
        TransformerBlock(2, 32, activation="relu", layer_norm_eps=1e-6),
        DiscriminatorHead(activation="tanh", initializer_range=0.1),
        SentenceHead(3),
        TaggingHead(5),
        SpanQAHead(joint_prediction=False, beam_size=4, answerable_weight=0.25),
    ]
    for layer in made:
        config = layer.get_config()
        arguments = set(inspect.signature(type(layer).__init__).parameters) - {"self", "kwargs"}
        assert arguments <= set(config), (type(layer).__name__, arguments - set(config))
        clone = type(layer).from_config(config)
        assert {k: getattr(clone, k) for k in arguments} == {
            k: getattr(layer, k) for k in arguments
        }


def test_task_heads_round_trip_with_weights():
    from electra_tf.modeling import SentenceHead, SpanQAHead, TaggingHead

    sequence = tf.random.stateless_normal([BATCH, SEQ, 16], seed=[1, 2])
    features = {
        "input_mask": tf.ones([BATCH, SEQ], tf.int32),
        "segment_ids": tf.constant([[0, 0, 1, 1, 1, 1]] * BATCH),
        "start_positions": tf.constant([2, 3]),
        "end_positions": tf.constant([4, 3]),
        "is_impossible": tf.constant([0, 1]),
    }
    cases = [
        (SentenceHead(3), lambda h: h(sequence[:, 0])),
        (TaggingHead(4), lambda h: h(sequence)),
        (SpanQAHead(beam_size=3), lambda h: h(sequence, features)),
    ]
    for head, run in cases:
        expected = run(head)
        clone = keras.layers.deserialize(keras.layers.serialize(head))
        run(clone)
        clone.set_weights(head.get_weights())
        tf.nest.map_structure(
            lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), run(clone), expected
        )


@pytest.mark.parametrize(
    "tying",
    [
        {},
        {"untied_generator_embeddings": True},
        {"untied_generator": False},
        {"electra_objective": False},
        {"uniform_generator": True},
    ],
)
def test_pretraining_model_from_built_networks_round_trips_its_config(tying):
    from electra_tf.modeling import networks
    from electra_tf.pretraining.model import PretrainingModel

    disc = tiny_config()
    gen = dataclasses.replace(disc, hidden_size=8, num_attention_heads=1, intermediate_size=16)
    nets = networks.build_pretraining_networks(disc, gen, **tying)
    model = PretrainingModel(
        nets.discriminator,
        nets.generator,
        nets.generator_head,
        nets.discriminator_head,
        mask_id=4,
        special_ids=(0, 2, 3),
        max_seq_length=SEQ,
        max_predictions_per_seq=2,
        disc_weight=20.0,
    )
    model.build_all()
    clone = PretrainingModel.from_config(model.get_config())
    clone.build_all()
    assert [v.path for v in clone.weights] == [v.path for v in model.weights]
    clone.set_weights(model.get_weights())
    seed = tf.constant([3, 4], tf.int64)
    got, expected = (
        clone.compute(clone.dummy_features(), seed, False),
        model.compute(model.dummy_features(), seed, False),
    )
    np.testing.assert_allclose(got["loss"], expected["loss"], atol=1e-6)
    assert clone.disc_weight == 20.0 and clone.electra_objective == model.electra_objective
    shares = (
        clone.generator is not None
    ) and clone.generator.embeddings is clone.discriminator.embeddings
    assert shares == (
        (model.generator is not None) and not tying.get("untied_generator_embeddings")
    )


def test_flop_counter_against_a_hand_count():
    """ELECTRA-Small's discriminator (12 x hidden 256, FFN 1024, embeddings 128) and its 1/4
    generator at 128 tokens, multiply-adds counted by hand for one token."""
    from electra_tf.modeling import flops  # noqa: PLC0415

    small = sizes.resolve_encoder_hparams("small", vocab_size=30522)
    disc = EncoderConfig(**small)
    gen = EncoderConfig(**sizes.generator_hparams_from(small, 0.25))
    # q, k, v, o: 4 x 256 x 256 = 262,144; FFN: 2 x 256 x 1024 = 524,288; attention: scores and
    # weighted sum 2 x 128 x 256 = 65,536 -> 851,968 per layer; x 12 = 10,223,616; embedding
    # projection 128 x 256 = 32,768 -> 10,256,384 multiply-adds.
    assert flops.encoder_flops_per_token(disc, 128) == 2 * 10_256_384
    # generator: (4 x 64^2 + 2 x 64 x 256 + 2 x 128 x 64) x 12 + 128 x 64 = 786,432 + 8,192.
    assert flops.encoder_flops_per_token(gen, 128) == 2 * 794_624
    # + discriminator head 256 x 257 per token, generator head (64 x 128 + 128 x 30522) at 19 of
    # 128 positions; x 2 FLOPs per multiply-add; x 3 for training.
    head = 19 / 128 * (64 * 128 + 128 * 30522)
    expected = 3 * 2 * (10_256_384 + 256 * 257 + 794_624 + head)
    assert flops.electra_train_flops_per_token(disc, gen, 128, 19) == pytest.approx(expected)
    assert flops.finetuning_train_flops_per_example(disc, 128) == 3 * 128 * 2 * 10_256_384
    assert flops.electra_train_flops_per_token(disc, None, 128, 19) == 3 * 2 * (
        10_256_384 + 256 * 257
    )
    assert flops.finetuning_train_flops_per_example(object(), 128) == 0.0
