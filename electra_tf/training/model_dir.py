"""The model directory: its file names, its JSON files and its name-keyed checkpoints.

Pre-training writes `DATA/models/NAME/` and fine-tuning one folder per task and trial below it;
conversion reads and writes both. This module is the one place that knows the layout:

  ckpt-N.{index,data-*}  `tf.train.Checkpoint(model={variable path: variable}, optimizer=...)`
  inputs/worker-K/       the input pipelines' positions at each checkpoint step
  encoder_config.json    the encoder's `EncoderConfig` (its shape), so no size hparams are repeated
  pretrain_config.json   the `PretrainingConfig` of a pre-trained model
  finetune_config.json   the `FinetuningConfig` of a fine-tuned model
  task_info.json         a fine-tuned model's task: kind, labels, inputs (what export needs)

Checkpoints are keyed by variable path (`electra/layer_0/attention/query/kernel`, the reference's
layout), so any model holding an encoder restores it by name, whatever else it holds.
"""

import re

import tensorflow as tf

from electra_tf import fileio

ENCODER_CONFIG = "encoder_config.json"
PRETRAIN_CONFIG = "pretrain_config.json"
FINETUNE_CONFIG = "finetune_config.json"
TASK_INFO = "task_info.json"
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
