"""electra-score: a tiny Electric model trained here on the bundled corpus prefers original sentences
to their word-shuffled versions; scores stream through batches and match the model's energies."""

import os
import random

import numpy as np
import pytest
import tensorflow as tf

from electra_tf import vocab as vocab_lib
from electra_tf.data import pretraining_data
from electra_tf.demo import corpus_dir
from electra_tf.pretraining import scoring
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.trainer import run_pretraining

STEPS = 300


@pytest.fixture(scope="module")
def electric_dir(tmp_path_factory):
    """A tiny Electric model pre-trained for STEPS steps on the demo corpus (about two minutes)."""
    data = str(tmp_path_factory.mktemp("electric"))
    vocab_lib.learn_wordpiece_vocab(corpus_dir(), f"{data}/vocab.txt", vocab_size=2000)
    pretraining_data.build_dataset(
        pretraining_data.BuildOptions(
            corpus_dir=corpus_dir(),
            vocab_file=f"{data}/vocab.txt",
            output_dir=f"{data}/pretrain_tfrecords",
            max_seq_length=64,
            num_out_files=2,
        )
    )
    with open(f"{data}/vocab.txt") as f:
        size = len(f.read().splitlines())
    config = PretrainingConfig(
        "electric",
        data,
        electric_objective=True,
        two_tower_generator=True,
        electra_objective=False,
        model_size="demo",
        model_hparam_overrides={"hidden_size": 64, "intermediate_size": 256},
        embedding_size=64,
        generator_hidden_size=0.25,
        vocab_size=size,
        max_seq_length=64,
        train_batch_size=32,
        num_train_steps=STEPS,
        num_warmup_steps=30,
        learning_rate=5e-4,
        iterations_per_loop=100,
        save_checkpoints_steps=STEPS,
    )
    run_pretraining(config)
    return config.model_dir


def _verses(n, seed=0):
    with open(os.path.join(corpus_dir(), "kjv_excerpt.txt"), encoding="utf-8") as f:
        lines = [line.strip() for line in f if 8 <= len(line.split()) <= 30]
    return random.Random(seed).sample(lines, n)


def _shuffled(line, rng):
    words = line.split()
    shuffled = words[:]
    while shuffled == words:
        rng.shuffle(shuffled)
    return " ".join(shuffled)


@pytest.mark.parametrize("score,minimum", [("energy", 0.55), ("cloze", 0.9)])
def test_originals_score_above_shuffled_versions(electric_dir, score, minimum):
    rng = random.Random(1)
    originals = _verses(1000)
    shuffled = [_shuffled(line, rng) for line in originals]
    scorer = scoring.ElectricScorer(electric_dir, batch_size=100, score=score)
    a = np.array(list(scorer.score_lines(originals)))
    b = np.array(list(scorer.score_lines(shuffled)))
    rate = float(np.mean(a > b))
    print(f"{score}: original > shuffled in {rate:.3f} of {len(a)} pairs")
    # Chance is 0.5 (the two have the same tokens: only their order can tell them apart); with
    # 1000 pairs, 0.55 is 3.2 standard deviations above it. Measured: see the README.
    assert rate > minimum, rate


def test_scores_stream_in_batches_and_equal_the_energy_sum(electric_dir, tmp_path):
    lines = _verses(45, seed=3) + ["", "In the beginning " * 40]  # an empty and a cut line
    path = tmp_path / "in.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "sub" / "scores.txt"
    assert scoring.score_file(electric_dir, str(path), str(out), batch_size=8) == len(lines)
    written = [float(s) for s in out.read_text().splitlines()]
    assert len(written) == len(lines) and written[-2] == 0.0
    # The same scores one sentence at a time, and from the definition: -sum of the
    # discriminator's outputs over the real tokens between [CLS] and [SEP].
    scorer = scoring.ElectricScorer(electric_dir, batch_size=1)
    alone = [next(scorer.score_lines([line])) for line in lines[:5]]
    np.testing.assert_allclose(written[:5], alone, rtol=1e-5, atol=1e-4)
    ids, mask = scorer.encode(lines[:1])
    energy = scorer.model(
        {"input_ids": ids, "input_mask": mask, "segment_ids": np.zeros_like(ids)}
    ).numpy()[0]
    n = int(mask.sum())
    assert scorer.truncated == 0
    np.testing.assert_allclose(written[0], -energy[1 : n - 1].sum(), rtol=1e-5, atol=1e-4)
    scorer.encode(lines[-1:])
    assert scorer.truncated == 1
    # A large file streams through a generator: the scorer never holds more than one batch.
    pulled = []

    def source():
        for i in range(100):
            pulled.append(i)
            yield lines[i % 45]

    scorer.batch_size = 10
    stream = scorer.score_lines(source())
    next(stream)
    assert len(pulled) == 10


def test_command_line(electric_dir, tmp_path, capsys):
    path = tmp_path / "in.txt"
    lines = _verses(3, seed=5)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = ["electra-score", f"--model_dir={electric_dir}", f"--input={path}"]
    capsys.readouterr()
    assert scoring.COMMAND(argv) == 0
    printed = [float(s) for s in capsys.readouterr().out.split()]
    expected = list(scoring.ElectricScorer(electric_dir).score_lines(lines))
    np.testing.assert_allclose(printed, expected, rtol=1e-6)
    assert scoring.COMMAND([*argv, "--score=cloze"]) == 0
    cloze = [float(s) for s in capsys.readouterr().out.split()]
    assert len(cloze) == 3 and not np.allclose(cloze, printed)
    assert scoring.COMMAND(["electra-score", f"--model_dir={electric_dir}", "--input=nope"]) == 1
    assert "--input nope not found" in capsys.readouterr().err
    assert scoring.COMMAND(["electra-score", f"--input={path}"]) == 2  # --model_dir is required


def test_refuses_a_model_without_the_electric_objective(tmp_path):
    config = PretrainingConfig("plain", str(tmp_path), model_size="demo")
    tf.io.gfile.makedirs(config.model_dir)
    from electra_tf.training import model_dir as model_dir_lib

    model_dir_lib.write(config.model_dir, model_dir_lib.PRETRAIN_CONFIG, config.to_dict())
    with pytest.raises(ValueError, match="not pre-trained with electric_objective"):
        scoring.ElectricScorer(config.model_dir)
