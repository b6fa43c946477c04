"""Tests for electra_tf.hparams and the pre-training config."""

import json
import uuid

import pytest
import tensorflow as tf

import configure_pretraining
from electra_tf import fileio
from electra_tf import hparams as hp
from electra_tf.modeling import sizes
from electra_tf.pretraining.config import PretrainingConfig

# The reference's PretrainingConfig defaults (google-research/electra,
# configure_pretraining.py) for the default "small" model.
REFERENCE_DEFAULTS = {
    "debug": False,
    "do_train": True,
    "do_eval": False,
    "electra_objective": True,
    "electric_objective": False,
    "gen_weight": 1.0,
    "disc_weight": 50.0,
    "mask_prob": 0.15,
    "learning_rate": 5e-4,
    "lr_decay_power": 1.0,
    "weight_decay_rate": 0.01,
    "num_warmup_steps": 10000,
    "iterations_per_loop": 200,
    "save_checkpoints_steps": 1000,
    "num_train_steps": 1000000,
    "num_eval_steps": 100,
    "keep_checkpoint_max": 5,
    "model_size": "small",
    "model_hparam_overrides": {},
    "embedding_size": 128,  # the small-model default
    "vocab_size": 30522,
    "do_lower_case": True,
    "uniform_generator": False,
    "two_tower_generator": False,
    "untied_generator_embeddings": False,
    "untied_generator": True,
    "generator_layers": 1.0,
    "generator_hidden_size": 0.25,
    "disallow_correct": False,
    "temperature": 1.0,
    "max_seq_length": 128,
    "train_batch_size": 128,
    "eval_batch_size": 128,
    "use_tpu": False,
    "num_tpu_cores": 1,
    "tpu_job_name": None,
    "tpu_name": None,
    "tpu_zone": None,
    "gcp_project": None,
    "max_predictions_per_seq": 19,
}


# Keys read together by several assertions below.
SIZE_DEFAULTS = (
    "max_seq_length",
    "learning_rate",
    "embedding_size",
    "generator_hidden_size",
    "train_batch_size",
    "mask_prob",
)
SHAPE = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads")
SIZE_FILE_SHAPE = (
    "num_hidden_layers",
    "hidden_size",
    "num_attention_heads",
    "intermediate_size",
    "embedding_size",
)
GENERATOR_SHAPE = ("hidden_size", "num_attention_heads", "intermediate_size", "num_hidden_layers")


def _values(source, *keys):
    """The values of `keys` of a dict or of a config's attributes, as one tuple to compare."""
    if isinstance(source, dict):
        return tuple(source[k] for k in keys)
    return tuple(getattr(source, k) for k in keys)


def _ram_path(name):
    return "ram://electra_tf_test_%s/%s" % (uuid.uuid4().hex, name)


def _write(path, obj):
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(obj))
    return path


def test_reference_defaults():
    config = PretrainingConfig("electra_small", "/data")
    for key, value in REFERENCE_DEFAULTS.items():
        assert getattr(config, key) == value, key
    assert config.model_name == "electra_small"
    assert config.pretrain_tfrecords == "/data/pretrain_tfrecords/pretrain_data.tfrecord*"
    assert config.vocab_file == "/data/vocab.txt"
    assert config.model_dir == "/data/models/electra_small"
    assert config.results_txt == "/data/models/electra_small/results/unsup_results.txt"
    assert config.results_pkl == "/data/models/electra_small/results/unsup_results.pkl"
    assert config.results_json == "/data/models/electra_small/results/unsup_results.json"
    # New switches.
    assert config.mask_strategy == "uniform"
    assert config.masking_with_replacement is False
    assert config.seed == 0
    assert config.jit_compile is False
    assert config.mixed_precision is None
    assert config.strategy == "auto"
    assert config.log_every_steps > 0


def test_top_level_module_reexports():
    assert configure_pretraining.PretrainingConfig is PretrainingConfig


@pytest.mark.parametrize("data_dir", ["gs://bucket/data", "gs://bucket/data/", "ram://"])
def test_paths_keep_url_schemes(data_dir):
    config = PretrainingConfig("m", data_dir)
    base = data_dir.rstrip("/") if not data_dir.endswith("://") else data_dir[:-1]
    assert config.vocab_file == base + "/vocab.txt"
    assert config.model_dir == base + "/models/m"
    assert "//" not in config.model_dir.split("://", 1)[1]


def test_base_and_large_size_defaults():
    # Like the released reference: only the embedding size and generator fraction follow
    # the size; the paper's 512-token / lr 2e-4 settings are the *_paper sizes (or hparams).
    base = PretrainingConfig("m", "/d", model_size="base")
    assert _values(base, *SIZE_DEFAULTS) == (128, 5e-4, 768, 0.25, 128, 0.15)
    large = PretrainingConfig("m", "/d", model_size="large", max_seq_length=512)
    assert _values(large, *SIZE_DEFAULTS) == (512, 5e-4, 1024, 0.25, 128, 0.15)
    assert large.max_predictions_per_seq == int((0.15 + 0.005) * 512)
    demo = PretrainingConfig("m", "/d", model_size="demo")
    assert (demo.learning_rate, demo.num_train_steps) == (1e-4, 300)


def test_passed_hparams_override_size_and_debug_defaults():
    config = PretrainingConfig(
        "m",
        "/d",
        model_size="large",
        learning_rate=1e-4,
        mask_prob=0.15,
        max_seq_length=256,
        embedding_size=512,
    )
    assert _values(
        config, "learning_rate", "mask_prob", "max_seq_length", "embedding_size", "train_batch_size"
    ) == (1e-4, 0.15, 256, 512, 128)
    assert config.max_predictions_per_seq == int(0.155 * 256)
    debug = PretrainingConfig("m", "/d", debug=True)
    assert _values(
        debug,
        "train_batch_size",
        "num_train_steps",
        "eval_batch_size",
        "iterations_per_loop",
        "num_eval_steps",
    ) == (8, 20, 4, 1, 2)
    debug = PretrainingConfig("m", "/d", debug=True, train_batch_size=16)
    assert debug.train_batch_size == 16
    shape = debug.model_hparams()
    assert _values(
        shape, "num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads"
    ) == (3, 144, 576, 4)


def test_unknown_hparam_names_closest_key():
    with pytest.raises(ValueError) as e:
        PretrainingConfig("m", "/d", lerning_rate=1e-4)
    assert "Unknown hparam 'lerning_rate' (did you mean 'learning_rate'?)" in str(e.value)
    config = PretrainingConfig("m", "/d")
    with pytest.raises(ValueError, match="did you mean 'train_batch_size'"):
        config.update({"learning_rate": 1.0, "train_batch_sise": 3})
    assert config.learning_rate == 5e-4  # nothing applied
    with pytest.raises(ValueError, match="mask_strategy"):
        PretrainingConfig("m", "/d", mask_strategy="span")
    with pytest.raises(ValueError, match="did you mean 'hidden_size'"):
        PretrainingConfig("m", "/d", model_hparam_overrides={"hiden_size": 3})
    # Electric and the two-tower generator: the combinations the reference runs, others refused.
    with pytest.raises(ValueError, match="electric_objective needs two_tower_generator true"):
        PretrainingConfig("m", "/d", electric_objective=True)
    for bad in ({"uniform_generator": True}, {"untied_generator": False}):
        with pytest.raises(ValueError, match="two_tower_generator needs untied_generator true"):
            PretrainingConfig("m", "/d", two_tower_generator=True, **bad)
    with pytest.raises(ValueError, match="two_tower_generator is a generator for a discrimin"):
        PretrainingConfig("m", "/d", two_tower_generator=True, electra_objective=False)
    PretrainingConfig("m", "/d", electric_objective=True, two_tower_generator=True)
    PretrainingConfig("m", "/d", two_tower_generator=True)  # ELECTRA with the cloze generator


def test_load_hparams_from_string_file_and_none():
    assert hp.load_hparams(None) == {}
    assert hp.load_hparams("") == {}
    assert hp.load_hparams('{"learning_rate": 1e-4, "debug": true}') == {
        "learning_rate": 1e-4,
        "debug": True,
    }
    path = _write(_ram_path("hparams.json"), {"train_batch_size": 7, "model_size": "base"})
    loaded = hp.load_hparams(path)
    assert loaded == {"train_batch_size": 7, "model_size": "base"}
    config = PretrainingConfig("m", "/d", **loaded)
    assert config.train_batch_size == 7 and config.embedding_size == 768
    with pytest.raises(ValueError, match="neither a JSON object"):
        hp.load_hparams(_ram_path("missing.json"))
    with pytest.raises(ValueError, match="must be a JSON object"):
        hp.load_hparams(_write(_ram_path("list.json"), [1, 2]))
    with pytest.raises(ValueError, match="--hparams: invalid JSON at column 2"):
        hp.load_hparams("{not json")
    broken = _ram_path("broken.json")
    with tf.io.gfile.GFile(broken, "w") as f:
        f.write('{\n  "seed": 1,\n  "x": \n}')
    with pytest.raises(ValueError, match=f"{broken}: invalid JSON at line 4 column 1"):
        hp.load_hparams(broken)


def test_json_roundtrip_on_ram():
    config = PretrainingConfig("m", "ram://d", model_size="base", seed=3)
    path = config.save_json(_ram_path("sub/config.json"))
    loaded = hp.load_hparams(path)
    assert loaded == json.loads(config.to_json())
    assert loaded["seed"] == 3 and loaded["embedding_size"] == 768
    again = PretrainingConfig(loaded.pop("model_name"), "ram://elsewhere", **loaded)
    assert again.to_dict() == config.to_dict()


def test_model_and_generator_hparams():
    small = PretrainingConfig("m", "/d")
    disc = small.model_hparams()
    assert {
        k: disc[k]
        for k in (
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "embedding_size",
            "vocab_size",
        )
    } == {
        "hidden_size": 256,
        "num_hidden_layers": 12,
        "num_attention_heads": 4,
        "intermediate_size": 1024,
        "embedding_size": 128,
        "vocab_size": 30522,
    }
    gen = small.generator_hparams()
    assert _values(gen, *GENERATOR_SHAPE, "embedding_size") == (64, 1, 256, 12, 128)

    base = PretrainingConfig("m", "/d", model_size="base_paper", generator_layers=0.5)
    gen = base.generator_hparams()
    # round(768 * 0.33333) = 256 -> 4 heads, as the reference's get_generator_config.
    assert _values(
        gen, "hidden_size", "num_attention_heads", "intermediate_size", "num_hidden_layers"
    ) == (256, 4, 1024, 6)

    untied = PretrainingConfig("m", "/d", untied_generator_embeddings=True)
    assert untied.generator_hparams()["embedding_size"] == 64

    large = PretrainingConfig("m", "/d", model_size="large", vocab_size=1000)
    disc = large.model_hparams()
    assert _values(
        disc,
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "vocab_size",
    ) == (1024, 24, 16, 4096, 1000)
    assert large.generator_hparams()["hidden_size"] == 256

    tiny = PretrainingConfig("m", "/d", model_size="tiny").model_hparams()
    assert _values(
        tiny, "num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads"
    ) == (4, 312, 1200, 12)


def test_overriding_hidden_size_rederives_heads_like_the_reference():
    config = PretrainingConfig("m", "/d", model_hparam_overrides={"hidden_size": 512})
    disc = config.model_hparams()
    assert (disc["hidden_size"], disc["num_attention_heads"], disc["intermediate_size"]) == (
        512,
        8,
        2048,
    )
    config = PretrainingConfig(
        "m",
        "/d",
        model_hparam_overrides={
            "hidden_size": 512,
            "num_attention_heads": 2,
            "hidden_dropout_prob": 0.0,
        },
    )
    disc = config.model_hparams()
    assert (disc["num_attention_heads"], disc["hidden_dropout_prob"]) == (2, 0.0)


def test_model_size_by_path_and_unknown_size():
    path = _write(
        _ram_path("my_size.json"),
        {
            "hidden_size": 96,
            "num_hidden_layers": 3,
            "num_attention_heads": 3,
            "intermediate_size": 384,
            "embedding_size": 32,
            "generator_hidden_size": 0.5,
            "pretraining": {"max_seq_length": 64},
        },
    )
    config = PretrainingConfig("m", "/d", model_size=path)
    assert (config.embedding_size, config.generator_hidden_size, config.max_seq_length) == (
        32,
        0.5,
        64,
    )
    disc = config.model_hparams()
    assert (disc["hidden_size"], disc["num_hidden_layers"], disc["num_attention_heads"]) == (
        96,
        3,
        3,
    )
    assert config.generator_hparams()["hidden_size"] == 48

    with pytest.raises(ValueError) as e:
        PretrainingConfig("m", "/d", model_size="smal")
    message = str(e.value)
    assert "Unknown model_size 'smal'" in message and "did you mean 'small'" in message
    for name in ("small", "base", "large", "tiny", "small_ex", "demo"):
        assert name in message

    bad = _write(_ram_path("bad_size.json"), {"hidden_sise": 3})
    with pytest.raises(ValueError, match="did you mean 'hidden_size'"):
        sizes.load_model_size(bad)


def test_bundled_sizes():
    assert {"small", "base", "large", "tiny", "small_ex", "demo"} <= set(
        sizes.available_model_sizes()
    )
    expected = {
        "small": (12, 256, 4, 1024, 128),
        "base": (12, 768, 12, 3072, 768),
        "large": (24, 1024, 16, 4096, 1024),
        "tiny": (4, 312, 12, 1200, 312),
        "small_ex": (24, 256, 4, 1024, 128),
        "demo": (2, 128, 2, 512, 64),
    }
    for name, shape in expected.items():
        size = sizes.load_model_size(name)
        assert _values(size, *SIZE_FILE_SHAPE) == shape, name
        assert size["hidden_size"] % size["num_attention_heads"] == 0, name
        assert 0 < size["generator_hidden_size"] <= 1, name


def test_gfile_join():
    assert fileio.join("gs://b", "x", "y") == "gs://b/x/y"
    assert fileio.join("ram://", "x") == "ram://x"
    assert fileio.join("/a/", "b") == "/a/b"
    assert fileio.join("a", "/abs") == "/abs"
    assert fileio.join("a", "gs://c/d") == "gs://c/d"


@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("num_train_steps", "10", 'must be an integer, got "10" (str)'),
        ("learning_rate", "fast", 'must be a number, got "fast" (str)'),
        ("do_train", 1, "must be true or false, got 1 (int)"),
        ("model_hparam_overrides", [1], "must be an object"),
    ],
)
def test_wrong_hparam_types_name_the_key_and_the_type(key, value, expected):
    with pytest.raises(ValueError) as e:
        PretrainingConfig("m", "/d", **{key: value})
    assert f"hparam {key!r} {expected}" in str(e.value)


def test_integral_floats_and_ints_are_accepted_where_they_mean_the_same():
    config = PretrainingConfig("m", "/d", num_train_steps=1e3, learning_rate=1)
    assert (config.num_train_steps, config.learning_rate) == (1000, 1.0)
    assert isinstance(config.num_train_steps, int) and isinstance(config.learning_rate, float)
    assert PretrainingConfig("m", "/d", keep_checkpoint_max=None).keep_checkpoint_max is None


@pytest.mark.parametrize(
    "key", ["save_checkpoints_steps", "iterations_per_loop", "num_train_steps"]
)
def test_zero_counts_are_refused(key):
    with pytest.raises(ValueError, match=f"hparam '{key}' must be positive, got 0"):
        PretrainingConfig("m", "/d", **{key: 0})


def test_a_saved_config_reloads_with_paths_derived_again_and_explicit_ones_kept():
    saved = PretrainingConfig("old", "gs://b/data", vocab_file="gs://b/vocabs/v.txt", seed=3)
    again = PretrainingConfig.from_hparams(saved.to_dict(), "new", "ram://elsewhere")
    assert again.model_dir == "ram://elsewhere/models/new"
    assert again.pretrain_tfrecords.startswith("ram://elsewhere/pretrain_tfrecords/")
    assert again.results_txt == "ram://elsewhere/models/new/results/unsup_results.txt"
    assert again.vocab_file == "gs://b/vocabs/v.txt"  # set explicitly: kept
    assert again.seed == 3
    plain = PretrainingConfig.from_hparams({"vocab_file": "/v.txt"}, "m", "/d")
    assert (plain.vocab_file, plain.model_dir) == ("/v.txt", "/d/models/m")


def test_model_name_and_data_dir_are_fixed_when_the_config_is_made(tmp_path):
    """They used to be accepted by `update` and ignored (every path derives from them), and a
    saved finetune_config.json in --hparams raised a raw TypeError."""
    from electra_tf.finetuning.config import FinetuningConfig

    data_dir = str(tmp_path)
    saved = FinetuningConfig("m", data_dir, task_names=["rte"]).to_dict()
    again = FinetuningConfig.from_hparams(saved, "m", data_dir)
    assert again.to_dict() == saved
    with pytest.raises(ValueError, match="hparam 'data_dir' contradicts --data_dir /elsewhere"):
        FinetuningConfig.from_hparams(saved, "m", "/elsewhere")
    with pytest.raises(ValueError, match='\'model_name\' is "n" but the config was made for "m"'):
        again.update({"model_name": "n"})
    with pytest.raises(ValueError, match="pass it as --model_name"):
        PretrainingConfig("m", data_dir).update({"model_name": "other"})
    again.update({"data_dir": data_dir})  # the same value is no change
