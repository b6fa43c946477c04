"""Shared fixtures and builders: the ../shared data folder (skip with a reason when absent), TF
log noise, and what several test files build alike (pre-training data and shards, tiny models and
short runs, entry-point runs), so each fact has one owner."""

import os
import subprocess
import sys
import uuid

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # pylint: disable=wrong-import-position

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("ELECTRA_TF_SHARED", os.path.join(REPO_ROOT, "..", "shared"))
# The tiny encoder most model tests build (BERT config keys): 2 layers of width 16, 2 heads.
TINY_ENCODER = dict(
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=32,
    max_position_embeddings=16,
)
# The tiny ELECTRA discriminator of the pre-training tests (`model_hparam_overrides`).
TINY_ELECTRA = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
)
# The hparams of that tiny ELECTRA, embeddings 16 wide (a pre-training or fine-tuning config).
TINY_ELECTRA_HPARAMS = dict(
    model_size="small", model_hparam_overrides=TINY_ELECTRA, embedding_size=16
)


def shared_path(*parts):
    """Path inside ../shared, or skip the calling test when the folder is not there."""
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip(f"needs {path} (the project's ../shared data folder), which is absent")
    return path


@pytest.fixture
def ram_dir():
    """A fresh in-memory directory standing in for a gs:// bucket."""
    return f"ram://test-{uuid.uuid4().hex}"


def run_python(*args, env=None, timeout=900):
    """`python ARGS` in the repository root in a fresh process, as a user would run an entry
    point (`run_pretraining.py ...`, `-m electra_tf.demo ...`); returns the completed process
    with text output (its exit status is not checked)."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": REPO_ROOT, **(env or {})},
        timeout=timeout,
    )


def run_entry_point(script, data_dir, model_name, hparams_file):
    """`python SCRIPT --data-dir DATA --model-name NAME --hparams FILE` (`run_pretraining.py`,
    `run_finetuning.py`) in a fresh process, as a user runs a job; it must succeed."""
    finished = run_python(
        script, f"--data-dir={data_dir}", "--model-name", model_name, f"--hparams={hparams_file}"
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return finished


def build_options(corpus_dir, vocab_file, output_dir, **options):
    """`pretraining_data.BuildOptions` for a test build: the paths as strings, 32 tokens and 4
    shards unless `options` say otherwise."""
    from electra_tf.data import pretraining_data  # pylint: disable=import-outside-toplevel

    settings = dict(
        corpus_dir=str(corpus_dir),
        vocab_file=str(vocab_file),
        output_dir=str(output_dir),
        max_seq_length=32,
        num_out_files=4,
    )
    settings.update(options)
    return pretraining_data.BuildOptions(**settings)


def build_pretraining_data(data_dir, max_seq_length, **options):
    """`DATA/pretrain_tfrecords` from `DATA/corpus` and `DATA/vocab.txt` (the layout
    run_pretraining.py reads), one shard unless `num_out_files` says otherwise; returns the
    dataset info."""
    from electra_tf.data import pretraining_data  # pylint: disable=import-outside-toplevel

    paths = dict(
        corpus_dir=f"{data_dir}/corpus",
        vocab_file=f"{data_dir}/vocab.txt",
        output_dir=f"{data_dir}/pretrain_tfrecords",
    )
    settings = {**paths, "max_seq_length": max_seq_length, "num_out_files": 1, **options}
    return pretraining_data.build_dataset(build_options(**settings))


def tiny_pretraining_config(data_dir, name, vocab_size, **overrides):
    """A `short_pretraining_config` of the tiny ELECTRA on 32 tokens: six steps in two host
    loops, two of them warm-up, two evaluation batches of 8; `overrides` replace any of it."""
    hparams = dict(
        TINY_ELECTRA_HPARAMS,
        vocab_size=vocab_size,
        max_seq_length=32,
        eval_batch_size=8,
        num_warmup_steps=2,
        num_eval_steps=2,
        learning_rate=1e-3,
    )
    return short_pretraining_config(name, data_dir, steps=6, loops=2, **{**hparams, **overrides})


def short_pretraining_config(name, data_dir, steps=4, loops=1, **hparams):
    """A `PretrainingConfig` of `steps` steps at batch 8 with one warm-up step, in `loops` host
    loops with a checkpoint after each: the model directory a fine-tuning or conversion test
    starts from. `hparams` add to that schedule or override it."""
    from electra_tf.pretraining.config import (  # pylint: disable=import-outside-toplevel
        PretrainingConfig,
    )

    schedule = dict(train_batch_size=8, num_train_steps=steps, num_warmup_steps=1)
    schedule.update(
        dict.fromkeys(("iterations_per_loop", "save_checkpoints_steps"), steps // loops)
    )
    return PretrainingConfig(name, data_dir, **{**schedule, **hparams})


def short_finetuning_config(name, data_dir, batch_size=8, **hparams):
    """A `FinetuningConfig` of one epoch with one batch size for training, evaluation and
    prediction; `hparams` add to it or override it."""
    from electra_tf.finetuning.config import (  # pylint: disable=import-outside-toplevel
        FinetuningConfig,
    )

    batches = dict.fromkeys(
        ("train_batch_size", "eval_batch_size", "predict_batch_size"), batch_size
    )
    return FinetuningConfig(name, data_dir, **{**batches, "num_train_epochs": 1.0, **hparams})


def write_shards(folder, n_files=2, per_file=6, length=8):
    """`n_files` finished pre-training shards in `folder`, named as the builder names them, of
    `per_file` examples of `length` tokens each; example i of shard f starts with the token
    f * 1000 + i (then 5s), so a test can tell where a read example came from. Returns the
    paths."""
    from electra_tf.data import pretraining_data, records  # pylint: disable=import-outside-toplevel

    paths = []
    for f in range(n_files):
        path = f"{folder}/{pretraining_data.shard_name(f, n_files)}"
        writer = records.AtomicRecordWriter(path)
        for i in range(per_file):
            ids = [f * 1000 + i] + [5] * (length - 1)
            example = {"input_ids": ids, "input_mask": [1] * length, "segment_ids": [0] * length}
            writer.write(records.encode_int64_example(example))
        writer.close()
        paths.append(path)
    return paths


@pytest.fixture(autouse=True)
def _absl_logs_reach_caplog():
    """absl's logger propagates INFO records to the root logger (where `caplog` listens), whatever
    an earlier test or library call did to its level or propagation."""
    import logging  # pylint: disable=import-outside-toplevel

    logger = logging.getLogger("absl")
    saved = (logger.propagate, logger.level)
    logger.propagate = True
    logger.setLevel(logging.INFO)
    yield
    logger.propagate, level = saved
    logger.setLevel(level)
