"""Shared fixtures: the ../shared data folder (skip with a reason when absent), TF log noise."""

import os
import subprocess
import sys
import uuid

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # pylint: disable=wrong-import-position

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("ELECTRA_TF_SHARED", os.path.join(REPO_ROOT, "..", "shared"))


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


def build_pretraining_data(data_dir, max_seq_length, **options):
    """`DATA/pretrain_tfrecords` from `DATA/corpus` and `DATA/vocab.txt` (the layout
    run_pretraining.py reads), one shard unless `num_out_files` says otherwise; returns the
    dataset info."""
    from electra_tf.data import pretraining_data  # pylint: disable=import-outside-toplevel

    settings = dict(
        corpus_dir=f"{data_dir}/corpus",
        vocab_file=f"{data_dir}/vocab.txt",
        output_dir=f"{data_dir}/pretrain_tfrecords",
        max_seq_length=max_seq_length,
        num_out_files=1,
    )
    settings.update(options)
    return pretraining_data.build_dataset(pretraining_data.BuildOptions(**settings))


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
