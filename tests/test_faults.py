"""Faults and bad input (issue 10): what each command promises when things go wrong.

Grouped by promise: nothing lost (a model is never deleted before its replacement exists), nothing
stale (results are never reused for inputs that changed), nothing silent (bad input is refused
with one line naming the file or key, before any output is touched), one writer per model dir.
Tiny models; each test takes seconds.
"""

import json
import os
import random

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO_ROOT, build_pretraining_data

from electra_tf.conversion import cli as convert_cli
from electra_tf.finetuning import runner as runner_lib
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.trainer import Pretrainer
from electra_tf.training import loop
from electra_tf.training import model_dir as model_dir_lib

WORDS = "the cat dog sat on mat a big red ran to house and".split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
FAST = dict(max_seq_length=32, train_batch_size=8, eval_batch_size=8, predict_batch_size=8)
FAST.update(num_train_epochs=1.0, iterations_per_loop=8, learning_rate=1e-3)


def _lines(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


def _pairs_task(data_dir, flip=False, dev_rows=16, labels=("yes", "no")):
    """A learnable sentence task: "yes" when the sentence has "cat" (labels swapped if flip)."""
    rng = random.Random(1)
    rows = []
    for _ in range(48 + dev_rows):
        words = rng.sample(WORDS, 5)
        label = (
            ("yes" if "cat" in words else "no") if not flip else ("no" if "cat" in words else "yes")
        )
        rows.append(f"{' '.join(words)},{label}")
    folder = f"{data_dir}/finetuning_data/pairs"
    _lines(f"{folder}/train.csv", ["text,label"] + rows[:48])
    _lines(f"{folder}/dev.csv", ["text,label"] + rows[48:])
    spec = {"kind": "classification", "format": "csv", "header": True, "text_a": "text"}
    spec.update(label="label", labels=list(labels), files={"train": "train.csv", "dev": "dev.csv"})
    with open(f"{folder}/task.json", "w") as f:
        json.dump(spec, f)
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A vocabulary, pre-training data and a tiny ELECTRA pre-trained for two steps."""
    data_dir = str(tmp_path_factory.mktemp("faults"))
    _lines(f"{data_dir}/vocab.txt", SPECIALS + WORDS)
    rng = random.Random(0)
    corpus = []
    for _ in range(60):
        corpus += [" ".join(rng.choices(WORDS, k=8)) for _ in range(5)] + [""]
    _lines(f"{data_dir}/corpus/c.txt", corpus)
    build_pretraining_data(data_dir, 32, num_out_files=2)
    Pretrainer(_pretrain_config(data_dir)).train()
    return data_dir


def _pretrain_config(data_dir, name="tiny", **hparams):
    settings = dict(model_hparam_overrides=TINY, vocab_size=len(SPECIALS + WORDS))
    settings.update(max_seq_length=32, train_batch_size=8, eval_batch_size=8, num_train_steps=2)
    settings.update(num_warmup_steps=1, save_checkpoints_steps=2, iterations_per_loop=2)
    settings.update(hparams)
    return PretrainingConfig(name, data_dir, **settings)


def _finetune(data_dir, **hparams):
    config = FinetuningConfig("tiny", data_dir, task_names=["pairs"], **{**FAST, **hparams})
    return runner_lib.run_finetuning(config)


def _model_dir(data_dir):
    return f"{data_dir}/models/tiny/finetuning_models/pairs_model_1"


def _kernel(model_dir):
    path = "task_specific_pairs/dense/kernel"
    prefix = tf.train.latest_checkpoint(model_dir)
    return tf.train.load_checkpoint(prefix).get_tensor(model_dir_lib.checkpoint_key(path))


# ----- nothing lost ---------------------------------------------------------------------------------


def test_a_mistyped_init_checkpoint_keeps_the_finetuned_model(data_dir):
    """10.2: the fine-tuned model used to be deleted before the missing checkpoint was noticed."""
    _pairs_task(data_dir)
    _finetune(data_dir)
    before = _kernel(_model_dir(data_dir))
    with pytest.raises(FileNotFoundError, match="init_checkpoint .*modles/tiny not found"):
        _finetune(data_dir, init_checkpoint=f"{data_dir}/modles/tiny", learning_rate=2e-3)
    np.testing.assert_array_equal(_kernel(_model_dir(data_dir)), before)


def test_retraining_moves_the_old_model_aside_until_the_new_one_is_saved(data_dir, monkeypatch):
    _pairs_task(data_dir)
    _finetune(data_dir)
    model_dir = _model_dir(data_dir)
    before = _kernel(model_dir)

    def crash(self, stop_at=None):
        raise KeyboardInterrupt("killed while retraining")

    monkeypatch.setattr(loop.TrainLoop, "train", crash)
    with pytest.raises(KeyboardInterrupt):
        _finetune(data_dir, learning_rate=5e-3)  # other settings: retrain
    np.testing.assert_array_equal(_kernel(f"{model_dir}.replaced"), before)
    monkeypatch.undo()
    _finetune(data_dir, learning_rate=5e-3)
    assert not os.path.exists(f"{model_dir}.replaced")
    assert not np.array_equal(_kernel(model_dir), before)


# ----- nothing stale --------------------------------------------------------------------------------


def test_changed_training_data_or_task_spec_retrains(data_dir, caplog):
    """10.3: replacing train.csv (flipped labels) used to rerun nothing and report old scores; an
    edited task.json with another label count crashed on a shape mismatch."""
    _pairs_task(data_dir)
    _finetune(data_dir)
    model_dir = _model_dir(data_dir)
    before = _kernel(model_dir)
    _pairs_task(data_dir, flip=True)
    with caplog.at_level("WARNING"):
        _finetune(data_dir)
    assert "training data" in caplog.text and "train.csv" in caplog.text
    assert not np.array_equal(_kernel(model_dir), before)
    _pairs_task(data_dir, labels=("yes", "no", "maybe"))
    results = _finetune(data_dir)
    assert _kernel(model_dir).shape == (16, 3) and "accuracy" in results[0]["pairs"]
    info = model_dir_lib.read(model_dir, model_dir_lib.TASK_INFO)
    assert info["label_list"] == ["yes", "no", "maybe"]


def test_a_different_vocabulary_is_refused_naming_both_files(data_dir, tmp_path):
    """10.4: ids shifted by one used to train and report scores silently."""
    _pairs_task(data_dir)
    other = tmp_path / "vocab.txt"
    other.write_text("".join(t + "\n" for t in ["[unused0]"] + SPECIALS + WORDS[:-1]))
    with pytest.raises(ValueError) as e:
        _finetune(data_dir, vocab_file=str(other))
    assert str(other) in str(e.value) and f"{data_dir}/vocab.txt" in str(e.value)
    with pytest.raises(ValueError, match="do_lower_case=False but the model"):
        _finetune(data_dir, do_lower_case=False)


# ----- nothing silent: bad input refused before any output ------------------------------------------


def test_empty_or_inconsistent_splits_are_refused_before_the_first_step(data_dir):
    """10.11: an empty dev file used to crash with IndexError after training; labels seen only in
    dev were reported after training."""
    folder = _pairs_task(data_dir)
    model_dir = f"{data_dir}/models/tiny/finetuning_models/pairs_model_1"
    if os.path.exists(model_dir):
        tf.io.gfile.rmtree(model_dir)
    _lines(f"{folder}/dev.csv", ["text,label"])
    with pytest.raises(ValueError, match="no dev examples in .*dev.csv"):
        _finetune(data_dir)
    _lines(f"{folder}/dev.csv", ["text,label", "the cat sat on mat,perhaps"])
    with pytest.raises(ValueError, match="perhaps"):
        _finetune(data_dir)
    assert not os.path.exists(model_dir)


def test_task_kind_comes_from_the_spec_not_the_name(data_dir):
    """10.10: a task named like "qa_dup" got span-QA defaults (512 tokens, 2 epochs)."""
    folder = _pairs_task(data_dir)
    tf.io.gfile.rename(folder, f"{data_dir}/finetuning_data/qa_dup", overwrite=True)
    try:
        config = FinetuningConfig("tiny", data_dir, task_names=["qa_dup"])
        assert (config.max_seq_length, config.num_train_epochs) == (128, 3.0)
    finally:
        tf.io.gfile.rename(f"{data_dir}/finetuning_data/qa_dup", folder)


@pytest.mark.parametrize("name", ["../../x", "/abs/x", "a/b", ".."])
def test_task_names_are_plain_names(data_dir, name):
    """10.13: task_names ["../../x"] moved outputs outside DATA/models/<name>."""
    with pytest.raises(ValueError, match="must be a plain name"):
        FinetuningConfig("tiny", data_dir, task_names=[name])


@pytest.mark.parametrize("file", ["../../../etc/passwd", "/etc/passwd", "sub/../../x"])
def test_task_files_stay_inside_the_task_folder(data_dir, file):
    """10.13: a task.json could read any file, and log_examples put its first row in the log."""
    folder = _pairs_task(data_dir)
    spec = json.load(open(f"{folder}/task.json"))
    spec["files"]["train"] = file
    with open(f"{folder}/task.json", "w") as f:
        json.dump(spec, f)
    with pytest.raises(ValueError, match="must be a file name inside the task's folder"):
        _finetune(data_dir)


def test_a_malformed_task_json_names_the_file_and_line(data_dir):
    folder = _pairs_task(data_dir)
    with open(f"{folder}/task.json", "w") as f:
        f.write('{\n  "kind": "classification",\n  "labels": [yes]\n}')
    with pytest.raises(ValueError, match="task.json: invalid JSON at line 3"):
        _finetune(data_dir)


def test_max_seq_length_beyond_the_position_table_is_refused(data_dir):
    """10.12: used to fail deep inside Keras with a shape error."""
    with pytest.raises(ValueError, match="'max_seq_length' \\(1024\\) exceeds the model's"):
        _pretrain_config(data_dir, max_seq_length=1024)


# ----- one writer per model directory ---------------------------------------------------------------


def test_a_second_run_on_the_same_model_dir_is_refused(data_dir):
    """10.6: two runs writing one model dir both succeeded, overwriting each other."""
    model_dir = f"{data_dir}/models/locked"
    with model_dir_lib.Lock(model_dir):
        with pytest.raises(model_dir_lib.ModelDirLockedError, match="is in use by pid"):
            with model_dir_lib.Lock(model_dir):
                pass
        # The real trainer refuses too, before writing anything.
        with pytest.raises(model_dir_lib.ModelDirLockedError):
            Pretrainer(_pretrain_config(data_dir, name="locked")).train()
    assert not tf.io.gfile.exists(f"{model_dir}/{model_dir_lib.LOCK}")
    assert tf.train.latest_checkpoint(model_dir) is None


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    model_dir = str(tmp_path / "m")
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    stale = {"host": model_dir_lib.socket.gethostname(), "pid": dead, "started": 0.0}
    os.makedirs(model_dir)
    with open(f"{model_dir}/{model_dir_lib.LOCK}", "w") as f:
        json.dump(stale, f)
    with model_dir_lib.Lock(model_dir) as lock:
        assert json.load(open(lock.path))["pid"] == os.getpid()


# ----- conversion -----------------------------------------------------------------------------------


def test_convert_refuses_a_non_empty_output_without_overwrite(data_dir, tmp_path, capsys):
    """10.7: --to hf into a non-empty folder overwrote weights and kept stale files."""
    pytest.importorskip("safetensors")
    out = tmp_path / "hf"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    argv = ["electra-convert", "--from=ours", "--to=hf", f"--input={data_dir}/models/tiny"]
    argv.append(f"--output={out}")
    assert convert_cli.COMMAND(argv) == 1
    assert "is not empty; pass --overwrite" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["stale.txt"]
    assert convert_cli.COMMAND(argv + ["--overwrite"]) == 0
    assert sorted(os.listdir(out)) == ["discriminator", "generator"]


def test_a_truncated_safetensors_file_is_named(data_dir, tmp_path):
    pytest.importorskip("safetensors")
    from electra_tf.conversion import huggingface

    out = tmp_path / "hf"
    convert_cli.convert("ours", "hf", f"{data_dir}/models/tiny", str(out))
    weights = out / "discriminator" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="model.safetensors is not a readable safetensors file"):
        huggingface.read_state(str(out / "discriminator"))


def test_convert_from_ours_does_not_look_in_the_parent_folder(data_dir, tmp_path):
    """10.12: a mistyped --input used to be read as a checkpoint prefix in its parent folder."""
    with pytest.raises(FileNotFoundError, match="--input .*tinyy not found"):
        convert_cli.convert("ours", "hf", f"{data_dir}/models/tinyy", str(tmp_path / "o"))


def test_debug_finetuning_loads_the_debug_pretrained_checkpoint(data_dir, caplog):
    """As the reference: debug mode shrinks both models to 3 layers of 144 and fine-tuning still
    initialises from the pre-trained checkpoint (it used to start from random weights)."""
    Pretrainer(_pretrain_config(data_dir, name="dbg", debug=True, num_train_steps=2)).train()
    _pairs_task(data_dir)
    config = FinetuningConfig(
        "dbg", data_dir, task_names=["pairs"], debug=True, max_seq_length=32, num_train_epochs=1.0
    )
    assert config.init_checkpoint == f"{data_dir}/models/dbg"
    assert config.model_hparams()["hidden_size"] == 144
    with caplog.at_level("INFO"):
        runner_lib.run_finetuning(config)
    assert f"encoder variables from {data_dir}/models/dbg/ckpt-2" in caplog.text


def test_finetuning_learns_a_learnable_task(data_dir):
    """Not only finite metrics: "does the sentence contain 'cat'" is learned well above the
    majority-class rate."""
    folder = _pairs_task(data_dir, dev_rows=48)
    with open(f"{folder}/dev.csv") as f:
        labels = [line.rsplit(",", 1)[1].strip() for line in list(f)[1:]]
    majority = 100.0 * max(labels.count("yes"), labels.count("no")) / len(labels)
    results = _finetune(
        data_dir,
        num_train_epochs=15.0,
        learning_rate=3e-3,
        model_dir=f"{data_dir}/learn_{{task}}_{{trial}}",
    )
    accuracy = results[0]["pairs"]["accuracy"]
    assert accuracy >= majority + 15.0, (accuracy, majority)


def test_pretraining_casing_must_be_the_datas(data_dir):
    """The casing recorded in the model dir (and used by fine-tuning) used to be whatever the
    config said, whatever the data was built with."""
    with pytest.raises(ValueError, match="built with do_lower_case=True but the config says "):
        Pretrainer(_pretrain_config(data_dir, do_lower_case=False))


def test_data_without_dataset_info_needs_the_explicit_hparam(data_dir, tmp_path):
    """10.5: shards without dataset_info.json (a killed build) used to be accepted silently."""
    other = str(tmp_path)
    tf.io.gfile.makedirs(f"{other}/pretrain_tfrecords")
    for name in tf.io.gfile.listdir(f"{data_dir}/pretrain_tfrecords"):
        if name.startswith("pretrain_data"):
            tf.io.gfile.copy(
                f"{data_dir}/pretrain_tfrecords/{name}", f"{other}/pretrain_tfrecords/{name}"
            )
    tf.io.gfile.copy(f"{data_dir}/vocab.txt", f"{other}/vocab.txt")
    with pytest.raises(ValueError, match="allow_missing_dataset_info"):
        Pretrainer(_pretrain_config(other))
    pretrainer = Pretrainer(_pretrain_config(other, allow_missing_dataset_info=True))
    assert pretrainer.data_info is None
    with pytest.raises(ValueError, match="'on_corrupt_shard' must be one of 'error', 'skip'"):
        _pretrain_config(other, on_corrupt_shard="ignore")


def test_sigkill_at_a_random_point_then_rerun_is_bit_identical(data_dir):
    """A real SIGKILL of run_pretraining.py somewhere after its first checkpoint; the same command
    again finishes with exactly the weights of an uninterrupted run (the dead run's lock is taken
    over)."""
    import signal
    import subprocess
    import sys
    import time

    hparams = dict(model_hparam_overrides=TINY, vocab_size=len(SPECIALS + WORDS), max_seq_length=32)
    hparams.update(train_batch_size=8, num_train_steps=8, num_warmup_steps=1)
    hparams.update(save_checkpoints_steps=2, iterations_per_loop=1)
    env = {**os.environ, "TF_DETERMINISTIC_OPS": "1", "PYTHONPATH": REPO_ROOT}

    def command(name):
        return [
            sys.executable,
            os.path.join(REPO_ROOT, "run_pretraining.py"),
            f"--data_dir={data_dir}",
            f"--model_name={name}",
            f"--hparams={json.dumps(hparams)}",
        ]

    victim = subprocess.Popen(command("killed"), env=env, stderr=subprocess.DEVNULL)
    first = f"{data_dir}/models/killed/ckpt-2.index"
    deadline = time.time() + 600
    while not os.path.exists(first) and time.time() < deadline and victim.poll() is None:
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 1.5))
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = tf.train.latest_checkpoint(f"{data_dir}/models/killed")
    for name in ("killed", "straight"):
        done = subprocess.run(command(name), env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    a = tf.train.load_checkpoint(tf.train.latest_checkpoint(f"{data_dir}/models/killed"))
    b = tf.train.load_checkpoint(tf.train.latest_checkpoint(f"{data_dir}/models/straight"))
    keys = list(
        model_dir_lib.checkpoint_variables(
            tf.train.latest_checkpoint(f"{data_dir}/models/straight")
        ).values()
    )
    assert keys and killed_at is not None
    for key in keys:
        np.testing.assert_array_equal(a.get_tensor(key), b.get_tensor(key), err_msg=key)
