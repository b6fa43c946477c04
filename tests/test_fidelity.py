"""Fidelity to google-research/electra where we used to differ (issue 11), one section per item."""

import random
import sys
import unicodedata

import numpy as np
import pytest
import tensorflow as tf
from conftest import build_pretraining_data, shared_path, tiny_pretraining_config

from electra_tf import tokenization
from electra_tf.data import pretraining_data

# ----- 1. tokenizer: ELECTRA's _is_control drops every "C*" category ------------------------------
ISSUE_TEXT = "ab\ue000cd x\u0378y"  # U+E000 private use (Co), U+0378 unassigned (Cn)
ISSUE_TOKENS = ["abc", "##d", "x", "##y"]


def _graph_input(text):
    """A str as the bytes a tf.string tensor can hold (lone surrogates as invalid UTF-8)."""
    return text.encode("utf-8", "surrogatepass")


def test_is_control_is_electras_rule():
    for cp, dropped in [
        (0x07, True),  # Cc
        (0x200B, True),  # Cf
        (0xE000, True),  # Co
        (0xF0000, True),  # Co, plane 15
        (0x0378, True),  # Cn
        (0xD800, True),  # Cs
        (0x09, False),  # \t, \n, \r are whitespace
        (0x0A, False),
        (0x0D, False),
        (0x41, False),
        (0x2028, False),  # Zl: split on, not dropped
    ]:
        assert tokenization.is_control(chr(cp)) is dropped, hex(cp)


def test_private_use_and_unassigned_vanish_on_every_path():
    tok = tokenization.FullTokenizer(shared_path("vocab", "en_uncased_vocab.txt"))
    ids = tok.convert_tokens_to_ids(ISSUE_TOKENS)
    assert tok.tokenize(ISSUE_TEXT) == ISSUE_TOKENS
    assert tok.encode_batch([ISSUE_TEXT]) == [ids]
    assert tok.tf_tokenize(tf.constant([ISSUE_TEXT])).to_list() == [ids]


@pytest.fixture
def fuzz_vocab(tmp_path):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "ab", "##a", "##b"]
    tokens += ["##ab", "c", "##c", ".", ",", "中", "é", "e", "##e", "x", "##x"]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return str(path)


def _c_category_fuzz(seed, n):
    rng = random.Random(seed)
    unassigned = [cp for cp in range(0x300, 0x3000) if unicodedata.category(chr(cp)) == "Cn"] + [
        0xFFFF,
        0xE0080,
        0x10FFFF - 2,
    ]
    alphabet = list("abcxe. ,\t\n") + ["é", "É", "e\u0301", "中", "\u3000", "\xa0", "\u2028"]
    alphabet += ["\x00", "\x07", "\x7f", "\x85", "\ufffd", "\u200b", "\ufeff", "\U000e0001"]
    alphabet += ["\ue000", "\uf8ff", "\U000f0000", "\U0010fffd"]  # Co
    alphabet += ["\ud800", "\udbff", "\udc00", "\udfff"]  # Cs (lone surrogates)
    alphabet += [chr(cp) for cp in rng.sample(unassigned, 40)]  # Cn
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25))) for _ in range(n)]


@pytest.mark.parametrize("lower", [True, False])
def test_c_categories_match_on_all_paths_on_hard_random_text(fuzz_vocab, lower):
    tok = tokenization.FullTokenizer(fuzz_vocab, do_lower_case=lower)
    texts = _c_category_fuzz(seed=int(lower), n=2000)
    expected = [tok.convert_tokens_to_ids(tok.tokenize(t)) for t in texts]
    # The cases really exercise the rule: removing the C* characters by hand gives the same ids.
    stripped = [
        "".join(c for c in t if c in "\t\n\r" or not unicodedata.category(c).startswith("C"))
        for t in texts
    ]
    assert [tok.convert_tokens_to_ids(tok.tokenize(t)) for t in stripped] == expected
    assert sum(ids.count(tok.unk_id) for ids in expected) < sum(map(len, expected)) // 3
    fast = tok.encode_batch(texts)
    bad = [t for t, e, g in zip(texts, expected, fast) if e != g]
    assert not bad, f"encode_batch differs on {len(bad)} lines, e.g. {bad[:3]!r}"
    graph = tok.tf_tokenize(tf.constant([_graph_input(t) for t in texts])).to_list()
    bad = [t for t, e, g in zip(texts, expected, graph) if e != g]
    assert not bad, f"tf_tokenize differs on {len(bad)} lines, e.g. {bad[:3]!r}"


def test_every_c_code_point_is_dropped_by_the_fast_and_graph_paths(fuzz_vocab):
    tok = tokenization.FullTokenizer(fuzz_vocab)
    dropped = [
        chr(cp)
        for cp in range(sys.maxunicode + 1)
        if cp not in (9, 10, 13) and unicodedata.category(chr(cp)).startswith("C")
    ]
    chunks = ["a" + "".join(dropped[i : i + 500]) + "b" for i in range(0, len(dropped), 500)]
    ab = tok.convert_tokens_to_ids(["ab"])
    assert tok.encode_batch(chunks) == [ab] * len(chunks)
    graph = tok.tf_tokenize(tf.constant([_graph_input(c) for c in chunks])).to_list()
    assert graph == [ab] * len(chunks)


def test_invalid_utf8_is_dropped_in_graph_as_in_python(fuzz_vocab):
    tok = tokenization.FullTokenizer(fuzz_vocab)
    texts = [b"a\xffb", b"a\xed\xa0\x80b", b"a\xe2\x28\xa1b", b"a\xc3b", b"\xc3\xa9e"]
    expected = [tok.convert_tokens_to_ids(tok.tokenize(t)) for t in texts]
    assert tok.tf_tokenize(tf.constant(texts)).to_list() == expected
    assert tok.encode_batch(texts) == expected


def test_dataset_builder_follows_the_control_rule(tmp_path):
    vocab = shared_path("vocab", "en_uncased_vocab.txt")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = [ISSUE_TEXT, "private \U000f0000use and \ue001 more", "plain text here."]
    (corpus / "doc.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    pretraining_data.build_dataset(
        pretraining_data.BuildOptions(
            corpus_dir=str(corpus),
            vocab_file=vocab,
            output_dir=str(tmp_path / "out"),
            max_seq_length=64,
            num_out_files=1,
        )
    )
    tok = tokenization.FullTokenizer(vocab)
    out = tmp_path / "out"
    records = [
        r.numpy()
        for name in sorted(tf.io.gfile.listdir(str(out)))
        if name.startswith(pretraining_data.SHARD_PREFIX)
        for r in tf.data.TFRecordDataset(str(out / name))
    ]
    spec = {"input_ids": tf.io.FixedLenFeature([64], tf.int64)}
    got = []
    for record in records:
        ids = tf.io.parse_single_example(record, spec)["input_ids"].numpy()
        special = {tok.vocab[t] for t in ("[PAD]", "[CLS]", "[SEP]")}
        got += [int(i) for i in ids if int(i) not in special]
    expected = [i for line in lines for i in tok.convert_tokens_to_ids(tok.tokenize(line))]
    assert got == expected
    assert tok.unk_id not in got
    assert np.all(np.array(got[:4]) == tok.convert_tokens_to_ids(ISSUE_TOKENS))


# ----- 2. initialisers: tf.layers.dense defaults where the reference uses them -----------------------
def _pretraining_model(**hparams):
    from electra_tf.pretraining.config import PretrainingConfig
    from electra_tf.pretraining.model import build_pretraining_model

    config = PretrainingConfig(
        "m",
        "/tmp/unused",
        model_size="small",
        vocab_size=64,
        max_seq_length=8,
        model_hparam_overrides={"num_hidden_layers": 1},
        **hparams,
    )
    import keras

    keras.utils.set_random_seed(1)
    model = build_pretraining_model(config, mask_id=4, special_ids=(0, 2, 3))
    model.build_all()
    return model


def _by_name(model):
    return {v.path if hasattr(v, "path") else v.name: v.numpy() for v in model.weights}


def _glorot_std(kernel):
    fan_in, fan_out = kernel.shape
    return np.sqrt(6.0 / (fan_in + fan_out)) / np.sqrt(3.0)


def test_embeddings_project_and_discriminator_output_start_glorot_uniform():
    model = _pretraining_model()  # small: embedding 128 < hidden 256 -> embeddings_project
    weights = _by_name(model)
    checked = {}
    for name, w in weights.items():
        if name.endswith("kernel") and ("embeddings_project" in name or "dense_prediction" in name):
            checked[name] = w
            limit = np.sqrt(6.0 / sum(w.shape))
            assert np.abs(w).max() <= limit + 1e-6, name
            assert np.abs(w).max() > 3 * 0.02, name  # truncated normal 0.02 stays below 0.04
            assert abs(w.std() / _glorot_std(w) - 1) < 0.15, (name, w.std(), _glorot_std(w))
    # The discriminator's and the generator's projections, and the discriminator's dense(1).
    assert sum("embeddings_project" in n for n in checked) == 2, sorted(weights)
    assert sum("dense_prediction" in n for n in checked) == 1, sorted(weights)
    # Everything else keeps BERT's truncated normal(0.02): e.g. the discriminator's hidden dense.
    hidden = [
        w
        for n, w in weights.items()
        if "discriminator_predictions" in n and n.endswith("dense/kernel")
    ]
    assert len(hidden) == 1 and np.abs(hidden[0]).max() <= 2 * 0.02 + 1e-6
    assert abs(hidden[0].std() - 0.02 * 0.88) < 0.002  # a normal truncated at 2 std


# ----- 3. masking_with_replacement: duplicates get the floor of the mean, as the reference ----------
def _reference_scatter_update(sequence, updates, positions, weights):
    """The reference's scatter_update in numpy: sum the updates per position, divide by the count
    (floor for integers); slots with weight 0 are the reference's position-0 slots, ignored."""
    sequence = np.array(sequence)
    sums = np.zeros_like(sequence)
    counts = np.zeros(sequence.shape[:2], np.int64)
    for b in range(positions.shape[0]):
        for p in range(positions.shape[1]):
            if weights[b, p] > 0:
                sums[b, positions[b, p]] += updates[b, p]
                counts[b, positions[b, p]] += 1
    out = sequence.copy()
    for b, t in zip(*np.nonzero(counts)):
        out[b, t] = (
            sums[b, t] // counts[b, t] if out.dtype.kind == "i" else sums[b, t] / counts[b, t]
        )
    return out


def test_scatter_update_averages_duplicates_like_the_reference():
    from electra_tf.pretraining import masking

    rng = np.random.default_rng(0)
    sequence = rng.integers(5, 100, size=(4, 12)).astype(np.int32)
    positions = rng.integers(1, 4, size=(4, 6)).astype(np.int32)  # many duplicates
    updates = rng.integers(5, 100, size=(4, 6)).astype(np.int32)
    weights = (rng.random((4, 6)) < 0.8).astype(np.float32)
    got = masking.scatter_update(
        tf.constant(sequence),
        tf.constant(updates),
        tf.constant(positions),
        tf.constant(weights),
        average_duplicates=True,
    ).numpy()
    np.testing.assert_array_equal(
        got, _reference_scatter_update(sequence, updates, positions, weights)
    )
    # A hand-made duplicate: ids 10 and 13 written at position 2 give 23 // 2 = 11.
    one = masking.scatter_update(
        tf.constant([[7, 7, 7, 7]]),
        tf.constant([[10, 13]]),
        tf.constant([[2, 2]]),
        average_duplicates=True,
    ).numpy()
    assert one.tolist() == [[7, 7, 11, 7]]
    # Float sequences [B, T, D] get the plain mean.
    vectors = rng.random((2, 5, 3)).astype(np.float32)
    new = rng.random((2, 3, 3)).astype(np.float32)
    pos = np.array([[1, 1, 4], [2, 3, 2]], np.int32)
    w = np.ones((2, 3), np.float32)
    got = masking.scatter_update(
        tf.constant(vectors), tf.constant(new), tf.constant(pos), tf.constant(w), True
    ).numpy()
    np.testing.assert_allclose(got, _reference_scatter_update(vectors, new, pos, w), rtol=1e-6)


def test_with_replacement_writes_the_floor_mean_of_the_samples_of_a_duplicate_draw(monkeypatch):
    from electra_tf.pretraining import masking

    # One candidate (position 1) and a budget of 3 slots: every draw is position 1.
    model = _pretraining_model(
        masking_with_replacement=True,
        uniform_generator=True,
        mask_prob=0.9,
        max_predictions_per_seq=3,
    )
    calls = []
    original = masking.scatter_update

    def spy(sequence, updates, positions, weights=None, average_duplicates=False):
        out = original(sequence, updates, positions, weights, average_duplicates)
        calls.append((updates.numpy(), positions.numpy(), weights.numpy(), out.numpy()))
        return out

    monkeypatch.setattr(masking, "scatter_update", spy)
    features = {
        "input_ids": tf.constant([[2, 9, 3, 0, 0, 0, 0, 0]]),
        "input_mask": tf.constant([[1, 1, 1, 0, 0, 0, 0, 0]]),
        "segment_ids": tf.zeros([1, 8], tf.int32),
    }
    seen_distinct_samples = False
    for step in range(6):
        calls.clear()
        outputs = model.compute(features, tf.constant([7, step], tf.int64), training=False)
        ((sampled, positions, weights, fake),) = calls
        assert positions[0].tolist() == [1, 1, 1] and weights[0].tolist() == [1, 1, 1]
        assert sampled[0].tolist() == outputs["sampled_ids"].numpy()[0].tolist()
        assert fake[0, 1] == sum(sampled[0]) // 3
        assert fake[0].tolist()[:1] + fake[0].tolist()[2:] == [2, 3, 0, 0, 0, 0, 0]
        labels = outputs["disc_labels"].numpy()[0]
        assert labels.tolist() == [0, int(fake[0, 1] != 9), 0, 0, 0, 0, 0, 0]
        seen_distinct_samples |= len(set(sampled[0].tolist())) > 1
    assert seen_distinct_samples  # a last-slot-wins scatter would differ on these


# ----- 4. size files: the released code's values; the paper's Table 6 by name ---------------------
# The paper's Table 6 pre-training settings (Clark et al. 2020) that differ by size.
PAPER_TABLE6 = {
    "base": {
        "generator_hidden_size": 0.33333,
        "mask_prob": 0.15,
        "max_seq_length": 512,
        "learning_rate": 2e-4,
        "train_batch_size": 256,
    },
    "large": {
        "generator_hidden_size": 0.25,
        "mask_prob": 0.25,
        "max_seq_length": 512,
        "learning_rate": 2e-4,
        "train_batch_size": 2048,
    },
}
# The released configure_pretraining.py: only small's embedding size depends on the size.
RELEASED = {
    "generator_hidden_size": 0.25,
    "mask_prob": 0.15,
    "max_seq_length": 128,
    "learning_rate": 5e-4,
    "train_batch_size": 128,
}
NETWORK_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


@pytest.fixture
def worktree_sizes(monkeypatch):
    """Reads the size files of this checkout, whatever checkout the package is installed from."""
    import pathlib

    from conftest import REPO_ROOT

    from electra_tf.modeling import sizes

    monkeypatch.setattr(
        sizes, "_model_sizes_dirs", lambda: [pathlib.Path(REPO_ROOT) / "model_sizes"]
    )
    return sizes


def _resolved(size):
    from electra_tf.pretraining.config import PretrainingConfig

    config = PretrainingConfig("m", "/d", model_size=size)
    return {k: getattr(config, k) for k in RELEASED}, config


def test_size_files_follow_one_rule(worktree_sizes):
    hparams = worktree_sizes
    names = hparams.available_model_sizes()
    paper = sorted(n for n in names if n.endswith("_paper"))
    assert paper == ["base_paper", "large_paper"]
    for name in names:
        size = hparams.load_model_size(name)
        if hparams.is_mobilebert(size):  # distillation students, not ELECTRA sizes
            continue
        description = size["description"]
        if name.endswith("_paper"):
            base = name[: -len("_paper")]
            assert "Table 6" in description, name
            plain = hparams.load_model_size(base)
            assert {k: size[k] for k in NETWORK_KEYS} == {k: plain[k] for k in NETWORK_KEYS}
            assert size.get("finetuning") == plain.get("finetuning"), name
            values, config = _resolved(name)
            assert values == PAPER_TABLE6[base], name
            assert config.max_predictions_per_seq == int((values["mask_prob"] + 0.005) * 512)
        else:
            assert "released code's values" in description, name
            if name == "demo":  # not a reference size: its own documented pretraining section
                assert "this project's" in description
                continue
            assert "pretraining" not in size, name
            values, config = _resolved(name)
            assert values == RELEASED, name
    assert "25% masking" not in hparams.load_model_size("base")["description"]
    assert _resolved("small")[1].embedding_size == 128
    assert _resolved("base")[1].embedding_size == 768


def test_paper_sizes_are_defaults_that_passed_hparams_override(worktree_sizes):
    from electra_tf.finetuning.config import FinetuningConfig
    from electra_tf.pretraining.config import PretrainingConfig

    config = PretrainingConfig(
        "m", "/d", model_size="large_paper", mask_prob=0.15, train_batch_size=16
    )
    assert (config.mask_prob, config.train_batch_size, config.max_seq_length) == (0.15, 16, 512)
    assert config.generator_hparams()["hidden_size"] == 256
    base_gen = PretrainingConfig("m", "/d", model_size="base_paper").generator_hparams()
    assert (base_gen["hidden_size"], base_gen["num_attention_heads"]) == (256, 4)
    released_gen = PretrainingConfig("m", "/d", model_size="base").generator_hparams()
    assert (released_gen["hidden_size"], released_gen["num_attention_heads"]) == (192, 3)
    fine = FinetuningConfig("m", "/d", model_size="large_paper", task_names=["rte"])
    assert (fine.learning_rate, fine.layerwise_lr_decay) == (5e-5, 0.9)


# ----- 5. disc_loss metric: per-example mean over real tokens, then mean over examples ------------
def test_eval_disc_loss_is_the_mean_of_per_example_means():
    from electra_tf.pretraining import trainer

    model = _pretraining_model(uniform_generator=True, mask_prob=0.5, max_predictions_per_seq=4)
    # A large output bias: real tokens cost ~5, replaced ones ~0, so examples with different
    # shares of replaced tokens have clearly different mean losses.
    model.discriminator_head.dense_prediction.bias.assign([5.0])
    features = {
        "input_ids": tf.constant([[2, 9, 3, 0, 0, 0, 0, 0], [2, 9, 10, 11, 12, 13, 14, 3]]),
        "input_mask": tf.constant([[1, 1, 1, 0, 0, 0, 0, 0], [1] * 8]),
        "segment_ids": tf.zeros([2, 8], tf.int32),
    }
    out = model.compute(features, tf.constant([3, 4], tf.int64), training=False)
    collected = {k: [np.atleast_1d(v.numpy())] for k, v in out.items()}
    results = trainer._eval_metrics(collected, with_discriminator=True)

    p = out["disc_probs"].numpy().astype(np.float64)
    y = out["disc_labels"].numpy()
    w = features["input_mask"].numpy().astype(np.float64)
    token_loss = -(y * np.log(p) + (1 - y) * np.log(1 - p)) * w
    per_example = token_loss.sum(1) / w.sum(1)
    per_batch = token_loss.sum() / w.sum()
    assert y[0].sum() >= 1 and abs(per_example.mean() - per_batch) > 0.05  # the two differ here
    np.testing.assert_allclose(results["disc_loss"], per_example.mean(), rtol=1e-4)
    # The training objective stays the reference's per-batch mean over real tokens.
    np.testing.assert_allclose(out["disc_loss"].numpy(), per_batch, rtol=1e-4)


# ----- 6. no key accepted and ignored: each takes effect or is refused -------------------------------
@pytest.mark.parametrize(
    "key,value,message",
    [
        ("num_tpu_cores", 8, "num_tpu_cores is not used: TPUStrategy finds"),
        ("tpu_job_name", "tpu_worker", "tpu_job_name is not used: the TPU cluster resolver"),
        ("electric_objective", True, "electric_objective needs two_tower_generator true"),
        ("log_every_steps", 0, "'log_every_steps' must be positive"),
        ("log_every_steps", "10", "'log_every_steps' must be an integer"),
    ],
)
def test_pretraining_keys_read_by_nothing_are_refused(key, value, message):
    from electra_tf.pretraining.config import PretrainingConfig

    with pytest.raises(ValueError, match=message) as error:
        PretrainingConfig("m", "/d", **{key: value})
    assert "\n" not in str(error.value)
    PretrainingConfig("m", "/d", num_tpu_cores=1, tpu_job_name=None, two_tower_generator=False)


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("num_tpu_cores", 8, "num_tpu_cores is not used: TPUStrategy finds"),
        ("tpu_job_name", "tpu_worker", "tpu_job_name is not used: the TPU cluster resolver"),
    ],
)
def test_finetuning_keys_read_by_nothing_are_refused(tmp_path, key, value, message):
    from electra_tf.finetuning.config import FinetuningConfig

    with pytest.raises(ValueError, match=message):
        FinetuningConfig("m", str(tmp_path), task_names=["rte"], **{key: value})
    FinetuningConfig("m", str(tmp_path), task_names=["rte"], num_tpu_cores=1, tpu_job_name=None)


def _tiny_pretrainer(tmp_path, **overrides):
    from electra_tf.pretraining.trainer import Pretrainer

    words = ["the", "cat", "dog", "sat", "on", "a", "mat", "red", "."]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (tmp_path / "corpus").mkdir()
    rng = random.Random(0)
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))) for _ in range(300)]
    (tmp_path / "corpus" / "c.txt").write_text("\n".join(lines) + "\n")
    build_pretraining_data(tmp_path, 16)
    hparams = dict(vocab_size=len(vocab), max_seq_length=16, **overrides)
    return Pretrainer(tiny_pretraining_config(str(tmp_path), "m", **hparams))


def _summary_steps(model_dir, tag):
    steps = []
    for path in tf.io.gfile.glob(f"{model_dir}/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return sorted(steps)


@pytest.mark.parametrize("every,expected", [(2, [2, 4, 6]), (100, [6])])
def test_log_every_steps_sets_the_logging_interval(tmp_path, every, expected):
    pretrainer = _tiny_pretrainer(tmp_path, log_every_steps=every)
    pretrainer.train()
    # iterations_per_loop=3 and checkpoints every 3 steps: without the switch, logs at 3 and 6.
    assert _summary_steps(pretrainer.config.model_dir, "train/loss") == expected
    ckpts = tf.train.get_checkpoint_state(pretrainer.config.model_dir).all_model_checkpoint_paths
    assert [int(c.rsplit("-", 1)[1]) for c in ckpts] == [3, 6]


def test_results_pkl_is_written(tmp_path):
    import pickle

    pretrainer = _tiny_pretrainer(tmp_path, num_train_steps=1, do_eval=True)
    pretrainer.train()
    results = pretrainer.evaluate()
    pretrainer.write_results(results)
    with tf.io.gfile.GFile(pretrainer.config.results_pkl, "rb") as f:
        assert pickle.load(f) == results
    assert pretrainer.config.results_pkl.endswith("results/unsup_results.pkl")
