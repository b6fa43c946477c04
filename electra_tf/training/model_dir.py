"""The model directory: its file names, its JSON files and its name-keyed checkpoints.

Pre-training writes `DATA/models/NAME/` and fine-tuning one folder per task and trial below it;
conversion reads and writes both. This module is the one place that knows the layout:

  ckpt-N.{index,data-*}  `tf.train.Checkpoint(model={variable path: variable}, optimizer=...)`
  inputs/worker-K/       the input pipelines' positions at each checkpoint step
  encoder_config.json    the encoder's `EncoderConfig` (its shape), so no size hparams are repeated
  pretrain_config.json   the `PretrainingConfig` of a pre-trained model
  finetune_config.json   the `FinetuningConfig` of a fine-tuned model
  task_info.json         a fine-tuned model's task: kind, labels, inputs (what export needs)
  vocab_info.json        the vocabulary the model was trained with: file, SHA-256, size, casing
  .lock                  the live run writing the directory (see `Lock`)

Checkpoints are keyed by variable path (`electra/layer_0/attention/query/kernel`, the reference's
layout), so any model holding an encoder restores it by name, whatever else it holds.
"""

import os
import re
import socket
import time

import tensorflow as tf
from absl import logging

from electra_tf import fileio, tokenization
from electra_tf.data.pretraining_data import file_sha256

ENCODER_CONFIG = "encoder_config.json"
PRETRAIN_CONFIG = "pretrain_config.json"
FINETUNE_CONFIG = "finetune_config.json"
TASK_INFO = "task_info.json"
VOCAB_INFO = "vocab_info.json"
VOCAB = "vocab.txt"

_KEY_PREFIX, _KEY_SUFFIX = "model/", "/.ATTRIBUTES/VARIABLE_VALUE"


# ----- locating checkpoints ----------------------------------------------------------------------


def is_checkpoint_prefix(path):
    return tf.io.gfile.exists(path + ".index")


def checkpoint_dir(path):
    """The folder of a checkpoint given as a folder or as a `ckpt-N` prefix (any gfile path)."""
    if is_checkpoint_prefix(path):  # first: ram:// calls any name prefix a folder
        return fileio.dirname(path)
    return path


def resolve_checkpoint(path, what="init_checkpoint"):
    """A checkpoint prefix from a folder (its latest checkpoint) or a `ckpt-N` prefix.

    Raises FileNotFoundError naming `what` and the path when there is no checkpoint there.
    """
    if is_checkpoint_prefix(path):
        return path
    if tf.io.gfile.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest:
            return latest
        raise FileNotFoundError(f"{what} {path} is a folder without checkpoints.")
    raise FileNotFoundError(
        f"{what} {path} not found: neither a folder of checkpoints nor a checkpoint prefix "
        f"({path}.index)."
    )


# ----- checkpoint keys ---------------------------------------------------------------------------


def named_variables(model):
    """{variable path: variable} for every model variable, dropout's random state included.

    Keras numbers its seed generators process-wide; their order in the model is what is stable, so
    they are saved as `random_states/<i>`.
    """
    weight_ids = {id(w) for w in model.weights}
    random_states = [v for v in model.variables if id(v) not in weight_ids]
    variables = {v.path: v for v in model.weights}
    variables.update({f"random_states/{i}": v for i, v in enumerate(random_states)})
    if len(variables) != len(model.variables):
        raise ValueError("Model variables must have unique paths to be checkpointed by name.")
    return variables


def new_checkpoint(model, optimizer=None):
    """The `tf.train.Checkpoint` of this layout for `model` (and its optimizer)."""
    if optimizer is None:
        return tf.train.Checkpoint(model=named_variables(model))
    return tf.train.Checkpoint(model=named_variables(model), optimizer=optimizer)


def checkpoint_key(path):
    """The key under which `new_checkpoint` saves the variable at `path`."""
    return _KEY_PREFIX + path.replace(".", "..").replace("/", ".S") + _KEY_SUFFIX


def variable_path(key):
    """The variable path a checkpoint key holds (inverse of `checkpoint_key`); None for keys that
    are not model variables (optimizer slots, the step counter, ...)."""
    if not (key.startswith(_KEY_PREFIX) and key.endswith(_KEY_SUFFIX)):
        return None
    name = key[len(_KEY_PREFIX) : -len(_KEY_SUFFIX)]
    return re.sub(r"\.(.)", lambda m: "/" if m.group(1) == "S" else m.group(1), name)


def checkpoint_variables(prefix):
    """{variable path: checkpoint key} of the model variables in a checkpoint."""
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)  # also for ram:// prefixes
    paths = {}
    for key in reader.get_variable_to_shape_map():
        path = variable_path(key)
        if path is not None:
            paths[path] = key
    return paths


def restore_variables(variables, checkpoint, what="init_checkpoint"):
    """Loads each variable from the value saved under its path; returns the checkpoint prefix.

    Raises ValueError naming the variables the checkpoint lacks or holds with another shape, before
    anything is assigned.
    """
    prefix = resolve_checkpoint(checkpoint, what)
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)  # also for ram:// prefixes
    shapes = reader.get_variable_to_shape_map()
    missing = [v.path for v in variables if checkpoint_key(v.path) not in shapes]
    if missing:
        raise ValueError(
            f"Checkpoint {prefix} lacks {len(missing)} of the model's {len(variables)} variables, "
            f"e.g. {', '.join(missing[:3])}. It must be a run_pretraining.py or run_finetuning.py "
            f"checkpoint of an encoder of the same shape (see {ENCODER_CONFIG} beside it)."
        )
    for v in variables:
        saved = shapes[checkpoint_key(v.path)]
        if list(saved) != list(v.shape):
            raise ValueError(
                f"Variable {v.path} has shape {list(v.shape)} but checkpoint {prefix} "
                f"holds shape {list(saved)}: the encoder sizes differ."
            )
    for v in variables:
        v.assign(reader.get_tensor(checkpoint_key(v.path)))
    return prefix


# ----- description files -------------------------------------------------------------------------


def read(folder, name, missing_ok=True):
    """The JSON file `name` of a model directory (None when absent and `missing_ok`)."""
    return fileio.read_json(fileio.join(folder, name), missing_ok=missing_ok)


def write(folder, name, value):
    """Writes the JSON file `name` of a model directory atomically."""
    fileio.write_json_atomic(fileio.join(folder, name), value, sort_keys=True)


def describe(path):
    """The description files beside a checkpoint (folder or `ckpt-N` prefix): {file name: value
    or None} for the encoder config, the pre-training and fine-tuning configs and the task info."""
    folder = checkpoint_dir(path)
    return {
        name: read(folder, name)
        for name in (ENCODER_CONFIG, PRETRAIN_CONFIG, FINETUNE_CONFIG, TASK_INFO)
    }


# ----- the vocabulary ----------------------------------------------------------------------------


def vocab_info(vocab_file, do_lower_case):
    """What `VOCAB_INFO` records: the file, its SHA-256, its size and the casing used with it."""
    size = tokenization.FullTokenizer(vocab_file, do_lower_case).vocab_size
    return {
        "vocab_file": vocab_file,
        "sha256": file_sha256(vocab_file),
        "vocab_size": size,
        "do_lower_case": do_lower_case,
    }


def check_vocab(folder, vocab_file, do_lower_case):
    """Refuses a vocabulary or casing other than the one the model in `folder` was trained with
    (a model without `VOCAB_INFO` passes: it predates the file or came from elsewhere)."""
    saved = read(folder, VOCAB_INFO)
    if saved is None:
        return
    if file_sha256(vocab_file) != saved["sha256"]:
        raise ValueError(
            f"Vocabulary {vocab_file} differs from {saved['vocab_file']}, the one the model in "
            f"{folder} was trained with (sha256 {saved['sha256'][:12]}...): token ids would not "
            "match. Use the model's vocabulary (vocab_file hparam)."
        )
    if bool(do_lower_case) != bool(saved["do_lower_case"]):
        raise ValueError(
            f"do_lower_case={do_lower_case} but the model in {folder} was trained with "
            f"do_lower_case={saved['do_lower_case']} on {saved['vocab_file']}."
        )


# ----- one writer at a time ----------------------------------------------------------------------

LOCK = ".lock"


class ModelDirLockedError(FileExistsError):
    """Another live run writes this model directory."""


class Lock:
    """`with Lock(model_dir):` -- the run that writes `model_dir`, refusing a second one.

    `lock_file` puts the lock elsewhere (fine-tuning keeps it beside the model directory, which it
    may move aside).

    The lock file `model_dir/.lock` holds the host, pid and start time of its owner. A lock left by
    a process of this host that is no longer alive (a killed run) is stale and taken over with a
    warning; a live owner, or one on another host, makes the second run fail with a message naming
    it (delete the file by hand if that run is known to be gone). Works on any `tf.io.gfile`
    filesystem; on object stores two runs starting within the same second may both pass.
    """

    def __init__(self, model_dir, lock_file=None):
        self.path = lock_file or fileio.join(model_dir, LOCK)
        self.model_dir = model_dir
        self.owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}

    def __enter__(self):
        held = (
            fileio.read_json(self.path, missing_ok=True) if tf.io.gfile.exists(self.path) else None
        )
        if held and held != self.owner:
            if held.get("host") == self.owner["host"] and not _alive(held.get("pid")):
                logging.warning(
                    "Taking over the stale lock of dead pid %s in %s", held["pid"], self.model_dir
                )
            else:
                started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(held.get("started", 0)))
                raise ModelDirLockedError(
                    f"{self.model_dir} is in use by pid {held.get('pid')} on {held.get('host')} "
                    f"since {started}; two runs must not write one model directory. If that run "
                    f"is gone, delete {self.path}."
                )
        fileio.write_json_atomic(self.path, self.owner)
        return self

    def __exit__(self, *exc_info):
        if fileio.read_json(self.path, missing_ok=True) == self.owner:
            tf.io.gfile.remove(self.path)
        return False


def _alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True
    return True
