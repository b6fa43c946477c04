"""MobileBERT: modeling, the original checkpoints (../shared/golden/mobilebert), sizes, HF parity."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_ENCODER, shared_path

from electra_tf.conversion import cli
from electra_tf.conversion import mobilebert as convert
from electra_tf.modeling import mobilebert as mb
from electra_tf.pretraining import distillation

GOLDEN_MODELS = ("teacher", "student_f2", "student_f4_bottleneck_attention", "student_emb32")


# The BERT shape of the tiny MobileBERT below, which transformers' configs take too.
TINY_SIZES = dict(TINY_ENCODER, vocab_size=40, intermediate_size=12)


def tiny_config(**overrides):
    values = dict(
        TINY_SIZES,
        hidden_act="relu",
        type_vocab_size=2,
        embedding_size=8,
        trigram_input=True,
        use_bottleneck=True,
        intra_bottleneck_size=8,
        key_query_shared_bottleneck=True,
        num_feedforward_networks=3,
        normalization_type="no_norm",
        classifier_activation=False,
    )
    values.update(overrides)
    return mb.MobileBertConfig(**values)


def tiny_inputs(seed=0, vocab_size=40):
    rng = np.random.default_rng(seed)
    mask = np.array([[1] * 6, [1] * 4 + [0] * 2], np.int32)
    return {
        "input_ids": tf.constant(rng.integers(1, vocab_size, (2, 6)) * mask, tf.int32),
        "input_mask": tf.constant(mask),
        "segment_ids": tf.constant([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 0, 0]], tf.int32),
        "masked_lm_positions": tf.constant([[1, 4], [2, 0]], tf.int32),
    }


def randomize(model, seed=0):
    """Moves every weight off its initial value (norm gammas off 1, biases off 0)."""
    rng = np.random.default_rng(seed)
    for variable in model.variables:
        if not variable.path.endswith("seed_generator_state"):
            scale = 0.3 if variable.path.endswith("gamma") else 0.1
            offset = 1.0 if variable.path.endswith("gamma") else 0.0
            variable.assign(offset + scale * rng.standard_normal(variable.shape))
    return model


# ----- the original checkpoints -----------------------------------------------------------------


def golden(*parts):
    return shared_path("golden", "mobilebert", *parts)


def load_golden(name):
    folder = golden(name)
    checkpoint = f"{folder}/distill_init" if name.startswith("student_f") else folder
    return convert.load_checkpoint(checkpoint, config_file=f"{folder}/bert_config.json")


def golden_feed():
    inputs = np.load(golden("inputs.npz"))
    keys = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions")
    return {k: tf.constant(inputs[k]) for k in keys}


def named_outputs(model, feed):
    """Our outputs under expected.npz's names."""
    outputs = model(feed, return_attention_scores=True)
    hiddens = [outputs["embedding_output"]] + outputs["encoder_outputs"]
    got = {f"layer_{i}": h for i, h in enumerate(hiddens)}
    got.update({f"attention_scores_{i}": s for i, s in enumerate(outputs["attention_scores"])})
    got["sequence_output"] = outputs["sequence_output"]
    got["pooled_output"] = outputs["pooled_output"]
    got["mlm_logits"] = tf.reshape(outputs["mlm_logits"], [-1, model.config.vocab_size])
    return {k: np.asarray(v) for k, v in got.items()}


@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_original_checkpoints_reproduce_expected_outputs(name):
    model, kind = load_golden(name)
    assert kind == ("bert" if name == "teacher" else "mobilebert")
    expected = np.load(golden(name, "expected.npz"))
    got = named_outputs(model, golden_feed())
    assert sorted(expected.files) == sorted(got)
    for key in expected.files:
        np.testing.assert_allclose(got[key], expected[key], rtol=0, atol=1e-5, err_msg=key)
    # The random students barely move their residual stream, so also check what each block
    # adds and the unmasked attention scores relative to their own size.
    for i in range(1, model.config.num_hidden_layers + 1):
        want = expected[f"layer_{i}"] - expected[f"layer_{i - 1}"]
        have = got[f"layer_{i}"] - got[f"layer_{i - 1}"]
        assert np.abs(have - want).max() <= 1e-4 * np.abs(want).max(), f"block {i}"
        scores = expected[f"attention_scores_{i - 1}"]
        real = scores > -1000.0
        error = np.abs(got[f"attention_scores_{i - 1}"] - scores)[real].max()
        assert error <= 1e-4 * np.abs(scores[real]).max(), f"attention {i - 1}"


def test_config_of_each_golden_model_is_recognised():
    teacher, kind = convert.read_bert_config(golden("teacher"))
    assert kind == "bert" and teacher.hidden_act == "gelu_new"  # the original's tanh gelu
    assert teacher.normalization_type == "layer_norm" and teacher.classifier_activation
    student, kind = convert.read_bert_config(golden("student_emb32", "bert_config.json"))
    assert kind == "mobilebert" and student.embedding_size == 32 and student.true_hidden_size == 16


def test_config_that_contradicts_the_checkpoint_is_refused(tmp_path):
    # The teacher's config with a student's checkpoint: named in the error.
    with pytest.raises(ValueError, match="describes a bert .* has MobileBERT variables"):
        convert.load_checkpoint(
            golden("student_emb32"), config_file=golden("teacher", "bert_config.json")
        )
    values = json.loads(open(golden("student_emb32", "bert_config.json")).read())
    values["intermediate_size"] = 40
    (tmp_path / "bert_config.json").write_text(json.dumps(values))
    with pytest.raises(ValueError, match="intermediate/dense/kernel"):
        convert.load_checkpoint(
            golden("student_emb32"), config_file=str(tmp_path / "bert_config.json")
        )
    values["use_botleneck"] = values.pop("use_bottleneck")
    (tmp_path / "bert_config.json").write_text(json.dumps(values))
    with pytest.raises(ValueError, match="bert_config.json: Unknown .* 'use_bottleneck'"):
        convert.read_bert_config(str(tmp_path))


def test_teacher_inside_a_distillation_checkpoint_loads_by_scope():
    teacher, _ = load_golden("teacher")
    inner, kind = convert.load_checkpoint(
        golden("student_f2", "distill_init"),
        config_file=golden("teacher", "bert_config.json"),
        scope="teacher/",
    )
    assert kind == "bert"
    for a, b in zip(teacher.variables, inner.variables):
        if not a.path.endswith("seed_generator_state"):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_original_checkpoint_round_trip(tmp_path):
    model = randomize(convert.new_model(tiny_config()))
    convert.save_checkpoint(model, str(tmp_path))
    names = {name for name, _ in tf.train.list_variables(str(tmp_path))}
    assert "bert/encoder/layer_1/ffn_layer_1/output/FakeLayerNorm/gamma" in names
    assert "cls/predictions/extra_output_weights" in names
    loaded, kind = convert.load_checkpoint(str(tmp_path), name="my_encoder")
    assert kind == "mobilebert" and loaded.variables[0].path.startswith("my_encoder/encoder/")
    feed = tiny_inputs()
    np.testing.assert_array_equal(loaded(feed)["mlm_logits"], model(feed)["mlm_logits"])


# ----- modeling -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"key_query_shared_bottleneck": False, "use_bottleneck_attention": True},
        {"key_query_shared_bottleneck": False},  # q, k, v from the block input
        {
            "use_bottleneck": False,
            "key_query_shared_bottleneck": False,
            "trigram_input": False,
            "embedding_size": 16,
            "normalization_type": "layer_norm",
            "num_feedforward_networks": 1,
            "classifier_activation": True,
        },
    ],
)
def test_model_get_config_round_trip_gives_the_same_outputs(options):
    model = randomize(convert.new_model(tiny_config(**options)))
    clone = mb.MobileBertForPreTraining.from_config(model.get_config())
    clone.build()
    for a, b in zip(model.variables, clone.variables):
        if not a.path.endswith("seed_generator_state"):
            assert a.path.split("/", 1)[1] == b.path.split("/", 1)[1]
            b.assign(a)
    feed = tiny_inputs()
    np.testing.assert_array_equal(clone(feed)["mlm_logits"], model(feed)["mlm_logits"])


def test_layers_get_config_round_trip():
    config = tiny_config()
    encoder = mb.MobileBertEncoder(config)
    head = mb.masked_lm_head_for(encoder)
    layers = [
        mb.NoNorm(name="n"),
        mb.MobileBertEmbeddings(config),
        mb.MobileBertAttention(2, 4, 8, dropout_rate=0.1, initializer_range=0.05),
        mb.MobileBertFFN(12, activation="gelu", normalization_type="layer_norm"),
        mb.MobileBertBlock(config),
        encoder,
        head,
    ]
    for layer in layers:
        config_dict = layer.get_config()
        clone = type(layer).from_config(config_dict)
        assert clone.get_config() == config_dict, type(layer).__name__
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(encoder))
    assert restored.config == config


def test_trigram_embedding_sees_next_current_and_previous_token():
    config = tiny_config(hidden_dropout_prob=0.0)
    embeddings = mb.MobileBertEmbeddings(config)
    embeddings.build()
    randomize(embeddings)
    ids = tf.constant([[3, 7, 5]])
    table = embeddings.word_embeddings.numpy()
    zero = np.zeros(config.embedding_size, np.float32)
    trigram = np.stack(
        [
            np.concatenate([table[7], table[3], zero]),
            np.concatenate([table[5], table[7], table[3]]),
            np.concatenate([zero, table[5], table[7]]),
        ]
    )
    transform = embeddings.embedding_transformation
    expected = trigram @ transform.kernel.numpy() + transform.bias.numpy()
    expected += embeddings.position_embeddings.numpy()[:3] + embeddings.token_type_embeddings[0]
    expected = expected * embeddings.norm.gamma.numpy() + embeddings.norm.beta.numpy()
    np.testing.assert_allclose(embeddings(ids)[0], expected, atol=1e-6)


def test_mlm_head_pads_the_table_with_extra_output_weights():
    model = randomize(convert.new_model(tiny_config()))
    head = model.mlm_head
    x = tf.constant(np.random.default_rng(1).standard_normal((1, 2, 16)), tf.float32)
    h = head.layer_norm(head.dense(x)).numpy()[0]
    table = model.encoder.embeddings.word_embeddings.numpy()  # [V, 8]
    extra = head.extra_output_weights.numpy()  # [V, 8]
    expected = h[:, :8] @ table.T + h[:, 8:] @ extra.T + head.output_bias.numpy()
    np.testing.assert_allclose(head(x)[0], expected, rtol=1e-5, atol=1e-5)
    assert convert.new_model(tiny_config(embedding_size=16)).mlm_head.extra_output_weights is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"normalization_type": "batch_norm"}, "normalization_type 'batch_norm'"),
        ({"use_bottleneck_attention": True}, "exclude each other"),
        ({"use_bottleneck": False}, "need use_bottleneck"),
        ({"intra_bottleneck_size": 9}, r"attention width \(9\)"),
        ({"embedding_size": 32}, "may not exceed hidden_size"),
        ({"hidden_act": "swishy"}, "Unsupported activation"),
        ({"num_feedforward_networks": 0}, "must be >= 1"),
    ],
)
def test_invalid_configs_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


def test_dropout_acts_only_in_training():
    model = convert.new_model(
        tiny_config(
            hidden_dropout_prob=0.5, use_bottleneck=False, key_query_shared_bottleneck=False
        )
    )
    feed = tiny_inputs()
    inference = model(feed)["sequence_output"]
    np.testing.assert_array_equal(model(feed)["sequence_output"], inference)
    assert np.abs(model(feed, training=True)["sequence_output"] - inference).max() > 1e-3


def test_config_json_round_trip(tmp_path):
    config = tiny_config()
    path = str(tmp_path / "config.json")
    config.to_json_file(path)
    assert mb.MobileBertConfig.from_json_file(path) == config
    assert (
        dataclasses.replace(
            config, use_bottleneck=False, key_query_shared_bottleneck=False
        ).true_hidden_size
        == 16
    )


# ----- size files ---------------------------------------------------------------------------------

# Size file -> (encoder parameters, encoder + MLM head parameters) and the published figures they
# must match: ymcui/Chinese-MobileBERT's table (with the head, +-0.2M) and transformers'
# MobileBertModel (encoder alone, rounded to 0.1M).
PUBLISHED_SIZES = {
    "mobilebert_base_f2": (25.6e6, 26.3e6),
    "mobilebert_base_f4": (31.6e6, 32.2e6),
    "mobilebert_large_f2": (39.6e6, 40.6e6),
    "mobilebert_large_f4": (51.9e6, 52.9e6),
    "mobilebert_en": (24.6e6, None),
}


def count(variables):
    return sum(
        int(np.prod(v.shape)) for v in variables if not v.path.endswith("seed_generator_state")
    )


@pytest.mark.parametrize("name", sorted(PUBLISHED_SIZES))
def test_size_files_have_the_published_parameter_counts(name):
    model = convert.new_model(mb.load_mobilebert_size(name))
    encoder, total = count(model.encoder.variables), count(model.variables)
    published_encoder, published_total = PUBLISHED_SIZES[name]
    assert abs(encoder - published_encoder) <= 0.05e6, encoder
    if published_total is not None:
        assert abs(total - published_total) <= 0.2e6, total


def test_size_file_reader(tmp_path):
    tiny = mb.load_mobilebert_size("mobilebert_tiny", num_hidden_layers=1)
    assert tiny.num_hidden_layers == 1 and tiny.key_query_shared_bottleneck
    path = tmp_path / "size.json"
    path.write_text(json.dumps({"vocab_size": 10, "hidden_size": 8, "num_attention_heads": 2}))
    assert mb.load_mobilebert_size(str(path)).true_hidden_size == 8
    path.write_text(json.dumps({"vocab_size": 10, "trigram": True}))
    with pytest.raises(ValueError, match="Unknown key 'trigram' in .*size.json .*'trigram_input'"):
        mb.load_mobilebert_size(str(path))
    with pytest.raises(ValueError, match="Unknown model_size 'mobilebert_huge'"):
        mb.load_mobilebert_size("mobilebert_huge")


# ----- Hugging Face parity ------------------------------------------------------------------------


def torch_outputs(hf_model, feed):
    import torch  # pylint: disable=import-outside-toplevel

    with torch.no_grad():
        result = hf_model(
            input_ids=torch.tensor(np.asarray(feed["input_ids"])).long(),
            attention_mask=torch.tensor(np.asarray(feed["input_mask"])).long(),
            token_type_ids=torch.tensor(np.asarray(feed["segment_ids"])).long(),
            output_hidden_states=True,
        )
    logits = result.logits if hasattr(result, "logits") else result.prediction_logits
    positions = np.asarray(feed["masked_lm_positions"])[..., None].astype(np.int64)
    return result.hidden_states[-1].numpy(), np.take_along_axis(logits.numpy(), positions, 1)


@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_golden_models_as_hf_folders_match_transformers_and_read_back(name, tmp_path):
    transformers = pytest.importorskip("transformers")
    model, kind = load_golden(name)
    folder = convert.save_hf(model, str(tmp_path), golden("vocab.txt"))
    config = json.loads((tmp_path / "config.json").read_text())
    architecture = "BertForMaskedLM" if name == "teacher" else "MobileBertForPreTraining"
    assert config["architectures"] == [architecture]
    hf_model = getattr(transformers, architecture).from_pretrained(folder).eval()
    sequence, logits = torch_outputs(hf_model, golden_feed())
    expected = np.load(golden(name, "expected.npz"))
    np.testing.assert_allclose(sequence, expected["sequence_output"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(
        logits.reshape(-1, model.config.vocab_size), expected["mlm_logits"], rtol=0, atol=1e-4
    )
    back, back_kind = convert.load_hf(folder)
    assert back_kind == kind
    for a, b in zip(model.variables, back.variables):
        if not a.path.endswith("seed_generator_state"):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


@pytest.mark.parametrize(
    "options",
    [
        {},  # shared key/query bottleneck, 3 FFNs, embedding_size < hidden_size
        {"key_query_shared_bottleneck": False, "use_bottleneck_attention": True},
        {
            "use_bottleneck": False,
            "key_query_shared_bottleneck": False,
            "classifier_activation": True,
        },
    ],
)
def test_our_model_as_hf_folder_matches_transformers(options, tmp_path):
    transformers = pytest.importorskip("transformers")
    model = randomize(convert.new_model(tiny_config(**options)))
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(f"[unused{i}]\n" for i in range(40)))
    folder = convert.save_hf(model, str(tmp_path / "hf"), str(vocab))
    hf_model = transformers.MobileBertForPreTraining.from_pretrained(folder).eval()
    feed = tiny_inputs()
    ours = model(feed)
    sequence, logits = torch_outputs(hf_model, feed)
    np.testing.assert_allclose(sequence, ours["sequence_output"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(logits, ours["mlm_logits"], rtol=0, atol=1e-4)
    assert np.abs(logits).max() > 0.1  # randomized weights: a real comparison


@pytest.mark.parametrize("architecture", ["MobileBertForPreTraining", "BertForMaskedLM"])
def test_folders_written_by_transformers_load_with_the_same_outputs(architecture, tmp_path):
    transformers = pytest.importorskip("transformers")
    import torch  # pylint: disable=import-outside-toplevel

    torch.manual_seed(0)
    if architecture == "BertForMaskedLM":
        config = transformers.BertConfig(**TINY_SIZES, hidden_act="gelu")
    else:
        config = transformers.MobileBertConfig(
            **TINY_SIZES, embedding_size=8, intra_bottleneck_size=8, num_feedforward_networks=2
        )
    hf_model = getattr(transformers, architecture)(config).eval()
    with torch.no_grad():  # move norms and biases off their initial values
        for parameter in hf_model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    hf_model.save_pretrained(str(tmp_path))
    model, kind = convert.load_hf(str(tmp_path))
    assert kind == ("bert" if architecture == "BertForMaskedLM" else "mobilebert")
    feed = tiny_inputs()
    sequence, logits = torch_outputs(hf_model, feed)
    ours = model(feed)
    np.testing.assert_allclose(ours["sequence_output"], sequence, rtol=0, atol=1e-4)
    np.testing.assert_allclose(ours["mlm_logits"], logits, rtol=0, atol=1e-4)


def test_model_transformers_cannot_hold_is_refused(tmp_path):
    model = convert.new_model(tiny_config(key_query_shared_bottleneck=False))
    with pytest.raises(ValueError, match="cannot hold use_bottleneck with queries and keys"):
        convert.save_hf(model, str(tmp_path), golden("vocab.txt"))
    with pytest.raises(ValueError, match="Only a plain BERT"):
        convert.save_hf(convert.new_model(tiny_config()), str(tmp_path), "v", kind="bert")


def test_hf_folder_missing_an_encoder_tensor_is_named(tmp_path):
    from safetensors import numpy as safetensors_numpy  # pylint: disable=import-outside-toplevel

    model = convert.new_model(tiny_config())
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n")
    folder = convert.save_hf(model, str(tmp_path / "hf"), str(vocab))
    path = tmp_path / "hf" / "model.safetensors"
    state = safetensors_numpy.load(path.read_bytes())
    del state["mobilebert.encoder.layer.1.ffn.0.output.LayerNorm.weight"]
    path.write_bytes(safetensors_numpy.save(state))
    with pytest.raises(ValueError, match="no 'mobilebert.encoder.layer.1.ffn.0.output.LayerNorm"):
        convert.load_hf(folder)


# ----- distillation losses ------------------------------------------------------------------------

DISTILLED = ("student_f2", "student_f4_bottleneck_attention")
# The settings expected_losses.json was written with (../shared/README.md).
WARMUP = dict(num_distill_steps=30, **distillation.ORIGINAL_TRANSFER_FACTORS)


def distillation_pair(name):
    """Student and teacher outputs from `name`'s distill_init checkpoint, and the teacher."""
    checkpoint = golden(name, "distill_init")
    student, _ = convert.load_checkpoint(checkpoint, config_file=golden(name, "bert_config.json"))
    teacher, _ = convert.load_checkpoint(
        checkpoint, config_file=golden("teacher", "bert_config.json"), scope="teacher/"
    )
    feed = golden_feed()
    return (
        student(feed, return_attention_scores=True),
        teacher(feed, return_attention_scores=True),
        teacher,
    )


def warmup_losses(student_out, teacher_out, step, reference_quirks):
    return distillation.progressive_transfer_losses(
        [teacher_out["embedding_output"]] + teacher_out["encoder_outputs"],
        [student_out["embedding_output"]] + student_out["encoder_outputs"],
        teacher_out["attention_scores"],
        student_out["attention_scores"],
        step,
        reference_quirks=reference_quirks,
        **WARMUP,
    )


@pytest.mark.parametrize("name", DISTILLED)
def test_reference_mode_reproduces_the_original_losses(name):
    expected = json.loads(open(golden(name, "expected_losses.json")).read())
    student_out, teacher_out, teacher = distillation_pair(name)
    inputs = np.load(golden("inputs.npz"))
    features = {k: tf.constant(inputs[k]) for k in inputs.files}
    warmup = distillation.DistillationConfig(
        layer_wise_warmup=True, reference_quirks=True, **WARMUP
    )
    checked = 0
    for key, want in expected.items():
        if key.startswith("layer_wise_warmup_step_"):
            step, config = int(key.rsplit("_", 1)[1]), warmup
        else:  # distillation_ratio_R_temperature_T: stage 2
            _, _, ratio, _, temperature = key.split("_")
            step, config = (
                0,
                distillation.DistillationConfig(
                    layer_wise_warmup=False,
                    distill_ground_truth_ratio=float(ratio),
                    distill_temperature=float(temperature),
                    reference_quirks=True,
                ),
            )
        got = distillation.distillation_losses(
            student_out, teacher_out, teacher.mlm_head, features, step, config
        )
        for loss_name, value in got.items():
            assert abs(float(value) - want[loss_name]) <= 1e-5, (key, loss_name, float(value))
        checked += 1
    assert checked == 7


def test_corrected_mode_fixes_each_quirk():
    student_out, teacher_out, teacher = distillation_pair("student_f2")
    reference = {s: warmup_losses(student_out, teacher_out, s, True) for s in (10, 20, 29)}
    corrected = {s: warmup_losses(student_out, teacher_out, s, False) for s in (0, 10, 29)}
    # Gate: layer l trains on steps [10 l, 10 l + 10); the original's on (10 l, 10 l + 10].
    for fixed, original in ((0, 10), (10, 20), (29, 29)):
        np.testing.assert_allclose(
            corrected[fixed]["feature_map_transfer_loss"],
            reference[original]["feature_map_transfer_loss"],
            rtol=1e-6,
        )
    # Attention: the KL divergence = the cross-entropy minus the teacher's entropy.
    scores = teacher_out["attention_scores"][2]
    log_p = tf.nn.log_softmax(scores, axis=-1)
    entropy = float(tf.reduce_mean(-tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1))) / 3
    kl = float(corrected[29]["attention_transfer_loss"])
    np.testing.assert_allclose(
        kl, float(reference[29]["attention_transfer_loss"]) - entropy, rtol=0, atol=1e-6
    )
    assert 0 <= kl < 1e-3 * float(reference[29]["attention_transfer_loss"])
    # Mean/variance against the matching teacher layer (numpy), not all layers stacked.
    t, s = (
        np.asarray(teacher_out["encoder_outputs"][2]),
        np.asarray(student_out["encoder_outputs"][2]),
    )
    mean_loss = np.mean((t.mean(-1) - s.mean(-1)) ** 2) * 5000.0 / 3
    variance_loss = np.mean(np.abs(t.var(-1) - s.var(-1))) * 5.0 / 3
    np.testing.assert_allclose(float(corrected[29]["mean_transfer_loss"]), mean_loss, rtol=1e-4)
    np.testing.assert_allclose(
        float(corrected[29]["variance_transfer_loss"]), variance_loss, rtol=1e-4
    )
    # Temperature divides the teacher's logits.
    hiddens = tf.constant(np.random.default_rng(0).standard_normal((2, 3, 64)), tf.float32)
    probs = distillation.teacher_distribution(teacher.mlm_head, hiddens, 2.0)
    np.testing.assert_allclose(probs, tf.nn.softmax(teacher.mlm_head(hiddens) / 2.0), atol=1e-7)


def test_layer_gates_and_mlm_targets():
    gates = lambda step, quirks: [  # noqa: E731
        float(distillation.layer_gate(step, layer, 10, quirks)) for layer in range(3)
    ]
    assert gates(0, True) == [0, 0, 0] and gates(0, False) == [1, 0, 0]
    assert gates(10, True) == [1, 0, 0] and gates(10, False) == [0, 1, 0]
    assert gates(30, True) == [0, 0, 1] and gates(30, False) == [0, 0, 0]
    logits = tf.constant([[[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]])
    teacher = tf.constant([[[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]])
    ids, weights = tf.constant([[0, 2]]), tf.constant([[1.0, 0.0]])
    got = distillation.distillation_mlm_loss(logits, teacher, ids, weights, 0.25)
    log_q = np.log(np.asarray(tf.nn.softmax(logits)))[0, 0]
    target = 0.25 * np.array([1.0, 0.0, 0.0]) + 0.75 * np.array([0.2, 0.5, 0.3])
    np.testing.assert_allclose(
        float(got["masked_lm_loss"]), -(target * log_q).sum() / (1 + 1e-5), rtol=1e-6
    )
    np.testing.assert_allclose(float(got["masked_lm_accuracy"]), 1 / (1 + 1e-5), rtol=1e-6)


def test_mean_and_variance_transfer_in_both_modes():
    # Teacher layers with distinct means and spreads, where the two modes differ.
    rng = np.random.default_rng(0)
    teacher = [(k + 1.0) * rng.standard_normal((2, 3, 8)) + k for k in range(3)]
    student = [rng.standard_normal((2, 3, 8)) for _ in range(3)]
    factors = dict(num_distill_steps=20, beta_distill_factor=3.0, gamma_distill_factor=2.0)
    stacked = np.stack(teacher)  # [L + 1, B, T, H]: the original's `teacher_hiddens`
    for quirks, step in ((True, 15), (False, 10)):  # both gate layer 2 (index 1) on
        got = distillation.progressive_transfer_losses(
            [tf.constant(t, tf.float32) for t in teacher],
            [tf.constant(x, tf.float32) for x in student],
            [None, None],
            [None, None],
            step,
            reference_quirks=quirks,
            **factors,
        )
        source = stacked if quirks else teacher[2]
        mean = np.mean((source.mean(-1) - student[2].mean(-1)) ** 2) * 3.0 / 2
        variance = np.mean(np.abs(source.var(-1) - student[2].var(-1))) * 2.0 / 2
        np.testing.assert_allclose(float(got["mean_transfer_loss"]), mean, rtol=1e-5)
        np.testing.assert_allclose(float(got["variance_transfer_loss"]), variance, rtol=1e-5)
        assert float(got["feature_map_transfer_loss"]) == 0.0  # its factor is 0: off


def test_student_starts_with_the_teachers_embeddings_and_head_as_the_original():
    teacher, _ = load_golden("teacher")
    config, _ = convert.read_bert_config(golden("student_f2"))
    student = convert.new_model(config)
    before = {v.path: v.numpy() for v in student.variables}
    copied = distillation.init_student_from_teacher(student, teacher)
    names = convert.original_names(student)
    copied_names = sorted(names[f"{student.name}/{path}"] for path in copied)
    assert copied_names == sorted(
        [
            "bert/embeddings/position_embeddings",
            "bert/embeddings/token_type_embeddings",
            "bert/embeddings/word_embeddings",
            "cls/predictions/output_bias",
            "cls/predictions/transform/LayerNorm/beta",
            "cls/predictions/transform/LayerNorm/gamma",
            "cls/predictions/transform/dense/bias",
            "cls/predictions/transform/dense/kernel",
        ]
    )
    # The original's distill_init holds exactly these values for them.
    reader = tf.train.load_checkpoint(golden("student_f2", "distill_init"))
    for variable in student.variables:
        name = names.get(variable.path)
        if name in copied_names:
            np.testing.assert_array_equal(variable.numpy(), reader.get_tensor(name), err_msg=name)
        elif not variable.path.endswith("seed_generator_state"):
            np.testing.assert_array_equal(variable.numpy(), before[variable.path])
    # A layer_norm student also takes the teacher's embedding LayerNorm (same original name).
    config = dataclasses.replace(config, normalization_type="layer_norm")
    copied = distillation.init_student_from_teacher(convert.new_model(config), teacher)
    assert "encoder/embeddings/norm/gamma" in copied


def test_mixed_precision_runs_with_float32_scores_and_logits():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = convert.new_model(tiny_config())
    finally:
        keras.config.set_dtype_policy(previous)
    reference_model = convert.new_model(tiny_config())
    for a, b in zip(model.variables, reference_model.variables):
        b.assign(a)
    feed = tiny_inputs()
    outputs = model(feed, return_attention_scores=True)
    assert outputs["mlm_logits"].dtype == tf.float32
    assert outputs["attention_scores"][0].dtype == tf.float32
    assert outputs["sequence_output"].dtype == tf.bfloat16
    np.testing.assert_allclose(
        outputs["mlm_logits"], reference_model(feed)["mlm_logits"], rtol=0, atol=5e-2
    )


def test_transfer_losses_train_the_student_only():
    teacher = randomize(
        convert.new_model(tiny_config(num_feedforward_networks=1), name="teacher"), seed=1
    )
    student = randomize(convert.new_model(tiny_config()), seed=2)
    feed = tiny_inputs()
    for quirks, nonzero in ((False, True), (True, False)):  # step 0: only the fix trains
        with tf.GradientTape() as tape:
            t = teacher(feed, return_attention_scores=True)
            s = student(feed, return_attention_scores=True)
            loss = distillation.progressive_transfer_losses(
                [t["embedding_output"]] + t["encoder_outputs"],
                [s["embedding_output"]] + s["encoder_outputs"],
                t["attention_scores"],
                s["attention_scores"],
                0,
                reference_quirks=quirks,
                **WARMUP,
            )["loss"]
        variables = teacher.trainable_variables + student.trainable_variables
        grads = dict(zip([v.path for v in variables], tape.gradient(loss, variables)))
        assert all(g is None for p, g in grads.items() if p.startswith(teacher.name + "/"))
        block0 = [
            g for p, g in grads.items() if p.startswith("mobilebert/encoder/layer_0/attention/")
        ]
        assert len(block0) == 8 and all(g is not None for g in block0)
        assert all((float(tf.reduce_max(tf.abs(g))) > 0) == nonzero for g in block0)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"num_distill_steps": 0}, "num_distill_steps must be >= 1"),
        ({"distill_ground_truth_ratio": 1.5}, r"must be in \[0, 1\]"),
        ({"distill_temperature": 0.0}, "distill_temperature must be > 0"),
    ],
)
def test_invalid_distillation_settings_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        distillation.DistillationConfig(**values)


def test_too_long_input_is_refused():
    model = convert.new_model(tiny_config())
    with pytest.raises(ValueError, match="17 tokens are longer than max_position_embeddings"):
        model({"input_ids": tf.ones((1, 17), tf.int32)})


def test_command_line_converts_an_original_checkpoint_to_hf_and_back(tmp_path, capsys):
    pytest.importorskip("transformers")
    source = tmp_path / "original"
    model = randomize(convert.new_model(tiny_config()))
    convert.save_checkpoint(model, str(source))
    (source / "vocab.txt").write_text("".join(f"[unused{i}]\n" for i in range(40)))
    hf_dir, back_dir = str(tmp_path / "hf"), str(tmp_path / "back")
    args = ["--from", "reference", "--to", "hf", "--input", str(source), "--output", hf_dir]
    assert cli.COMMAND(["electra-convert", *args]) == 0
    assert "(mobilebert)" in capsys.readouterr().out
    args = ["--from", "hf", "--to", "reference", "--input", hf_dir, "--output", back_dir]
    assert cli.COMMAND(["electra-convert", *args]) == 0
    back, _ = convert.load_checkpoint(back_dir)
    feed = tiny_inputs()
    np.testing.assert_array_equal(back(feed)["mlm_logits"], model(feed)["mlm_logits"])
    # An existing output is never overwritten.
    before = sorted(p.name for p in (tmp_path / "back").iterdir())
    assert cli.COMMAND(["electra-convert", *args]) == 1
    assert "is not empty" in capsys.readouterr().err
    # Our model dirs (what run_distillation.py writes and run_finetuning.py reads) both ways.
    ours = str(tmp_path / "models" / "student")
    args = ["--from", "reference", "--to", "ours", "--input", str(source), "--output", ours]
    assert cli.COMMAND(["electra-convert", *args]) == 0
    assert json.load(open(f"{ours}/encoder_config.json"))["model_type"] == "mobilebert"
    loaded = convert.load_model_dir(ours)
    assert all(v.path.startswith(("electra/", "mlm_head/")) for v in loaded.trainable_variables)
    np.testing.assert_array_equal(loaded(feed)["mlm_logits"], model(feed)["mlm_logits"])
    hf_again = str(tmp_path / "hf_again")
    args = ["--from", "ours", "--to", "hf", "--input", ours, "--output", hf_again]
    assert cli.COMMAND(["electra-convert", *args]) == 0
    again, _ = convert.load_hf(hf_again)
    np.testing.assert_allclose(again(feed)["mlm_logits"], model(feed)["mlm_logits"], atol=1e-5)
    # A BERT-family input cannot go to ELECTRA's SavedModel export.
    wrong = ["--from", "reference", "--to", "saved_model", "--input", str(source), "--output", "x"]
    assert cli.COMMAND(["electra-convert", *wrong]) == 1
    assert "converts --to hf, reference or ours" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == before
    bad = ["--from", "hf", "--to", "hf", "--input", hf_dir, "--output", str(tmp_path / "x")]
    assert cli.COMMAND(["electra-convert", *bad]) == 1
    assert "nothing to convert" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = [
        "--from",
        "reference",
        "--to",
        "hf",
        "--input",
        str(empty),
        "--output",
        str(tmp_path / "o"),
    ]
    assert cli.COMMAND(["electra-convert", *bad]) == 1
    assert "no TF1 checkpoint there" in capsys.readouterr().err  # not a BERT-family folder either
    assert not (tmp_path / "o").exists()
