"""Original MobileBERT / BERT TF1 checkpoints (`bert/...`, `cls/predictions/...`) <-> ours.

Reads a folder holding `bert_config.json` and `model.ckpt.*` as google-research's MobileBERT,
ymcui/Chinese-MobileBERT and the BERT/RoBERTa teachers publish them, into a
`MobileBertForPreTraining` (`electra_tf.modeling.mobilebert`). A plain BERT is the same network
with every MobileBERT option off, so teachers and students share one code path; `kind` tells
them apart by their config keys and variable names.

Name mapping (first matching rule, on paths relative to our encoder or head; NORM is
`FakeLayerNorm` for `no_norm`, `LayerNorm` for `layer_norm`) is the table in
`electra_tf.modeling.mobilebert`'s docstring, written out in `_ENCODER_RULES` / `_HEAD_RULES`.
Attention kernels change layout (BERT's [in, N*D] <-> our [in, N, D]) with
`reference.to_dense_layout` / `from_dense_layout`.
"""

import json
import posixpath
import re

import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf.conversion import reference
from electra_tf.modeling.mobilebert import MobileBertConfig, MobileBertForPreTraining

BERT_CONFIG = "bert_config.json"
# Keys some published BERT configs carry (e.g. Chinese RoBERTa-wwm-ext's) that the original
# model code never reads: logged and dropped.
_UNUSED_BERT_KEYS = (
    "directionality",
    "pooler_fc_size",
    "pooler_num_attention_heads",
    "pooler_num_fc_layers",
    "pooler_size_per_head",
    "pooler_type",
)
# What makes a config a MobileBERT rather than a plain BERT: (key, the plain BERT value).
_MOBILEBERT_OPTIONS = (
    ("trigram_input", False),
    ("use_bottleneck", False),
    ("num_feedforward_networks", 1),
    ("normalization_type", "layer_norm"),
    ("classifier_activation", True),
)
# Variable names only a MobileBERT checkpoint has.
_MOBILEBERT_NAMES = re.compile(r"FakeLayerNorm|/bottleneck/|embedding_transformation|ffn_layer_")

_ENCODER_RULES = (
    (r"^embeddings/norm/", "embeddings/{norm}/"),
    (r"^embeddings/", "embeddings/"),
    (r"^layer_(\d+)/bottleneck_(input|attention)/", r"encoder/layer_\1/bottleneck/\2/dense/"),
    (r"^layer_(\d+)/bottleneck_(input|attention)_norm/", r"encoder/layer_\1/bottleneck/\2/{norm}/"),
    (r"^layer_(\d+)/attention/(query|key|value)/", r"encoder/layer_\1/attention/self/\2/"),
    (r"^layer_(\d+)/attention/output/", r"encoder/layer_\1/attention/output/dense/"),
    (r"^layer_(\d+)/attention_norm/", r"encoder/layer_\1/attention/output/{norm}/"),
    (
        r"^layer_(\d+)/ffn_layer_(\d+)/(intermediate|output)/",
        r"encoder/layer_\1/ffn_layer_\2/\3/dense/",
    ),
    (r"^layer_(\d+)/ffn_layer_(\d+)/output_norm/", r"encoder/layer_\1/ffn_layer_\2/output/{norm}/"),
    (r"^layer_(\d+)/(intermediate|output)/", r"encoder/layer_\1/\2/dense/"),
    (r"^layer_(\d+)/output_norm/", r"encoder/layer_\1/output/{norm}/"),
    (r"^layer_(\d+)/output_bottleneck/", r"encoder/layer_\1/output/bottleneck/dense/"),
    (r"^layer_(\d+)/output_bottleneck_norm/", r"encoder/layer_\1/output/bottleneck/{norm}/"),
    (r"^pooler/", "pooler/dense/"),
)
_HEAD_RULES = (
    (r"^dense/", "transform/dense/"),
    (r"^layer_norm/", "transform/LayerNorm/"),
    (r"^(output_bias|extra_output_weights)$", r"\1"),
)


def _rename(local, rules, norm, what):
    for pattern, replacement in rules:
        name, count = re.subn(pattern, replacement, local, count=1)
        if count:
            return name.replace("{norm}", norm)
    raise ValueError(f"No original name for {what} variable {local!r}.")


def original_names(model, scope=""):
    """{our variable path: the original checkpoint's name} for a `MobileBertForPreTraining`.

    `scope` prefixes every original name (e.g. "teacher/" for the teacher inside a
    distillation checkpoint).
    """
    norm = "FakeLayerNorm" if model.config.normalization_type == "no_norm" else "LayerNorm"
    names = {}
    for layer, rules, root in (
        (model.encoder, _ENCODER_RULES, "bert/"),
        (model.mlm_head, _HEAD_RULES, "cls/predictions/"),
    ):
        for variable in _own_variables(layer):
            local = variable.path.split(f"{layer.name}/", 1)[1]
            names[variable.path] = scope + root + _rename(local, rules, norm, layer.name)
    return names


def _own_variables(layer):
    # The head also tracks the tied embedding table: keep each layer's own weights only.
    return [
        v
        for v in layer.variables
        if f"/{layer.name}/" in f"/{v.path}" and not reference.is_rng_state(v.path)
    ]


def read_bert_config(path):
    """`bert_config.json` (a file, or the folder holding it) -> (MobileBertConfig, kind).

    kind is "mobilebert" when any MobileBERT option differs from a plain BERT's, else "bert".
    The original's "gelu" is the tanh approximation: it becomes "gelu_new" here. Keys the
    original ignores (`directionality`, `pooler_*`) are dropped with a log line; any other
    unknown key raises, naming the file.
    """
    if tf.io.gfile.isdir(path):
        path = posixpath.join(path, BERT_CONFIG)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} not found: an original checkpoint needs its config.")
    with tf.io.gfile.GFile(path) as f:
        try:
            values = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from e
    dropped = [k for k in _UNUSED_BERT_KEYS if k in values]
    if dropped:
        logging.info("%s: ignoring %s (unused by the model).", path, ", ".join(dropped))
    values = {k: v for k, v in values.items() if k not in _UNUSED_BERT_KEYS}
    if str(values.get("hidden_act", "gelu")).lower() == "gelu":
        values["hidden_act"] = "gelu_new"
    try:
        config = MobileBertConfig.from_dict(values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from e
    return config, config_kind(config)


def config_kind(config):
    """ "bert" when `config` is a plain BERT (every MobileBERT option off), else "mobilebert"."""
    plain = all(getattr(config, key) == value for key, value in _MOBILEBERT_OPTIONS)
    plain = plain and config.embedding_size == config.hidden_size
    return "bert" if plain else "mobilebert"


def write_bert_config(config, path):
    """`config` as the original's bert_config.json ("gelu_new" written back as "gelu")."""
    values = config.to_dict()
    if values["hidden_act"] == "gelu_new":
        values["hidden_act"] = "gelu"
    elif values["hidden_act"] == "gelu":
        raise ValueError(
            "The original's gelu is the tanh approximation; a model with exact gelu "
            "(hidden_act='gelu') has no original config."
        )
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(values, indent=2, sort_keys=True) + "\n")


def _checkpoint_prefix(path):
    if tf.io.gfile.isdir(path):
        prefix = tf.train.latest_checkpoint(path)
        if prefix is None:
            candidate = posixpath.join(path, "model.ckpt")
            if tf.io.gfile.exists(candidate + ".index"):
                return candidate
            raise FileNotFoundError(f"{path} holds no checkpoint (no `checkpoint` or model.ckpt).")
        return prefix
    return path


def new_model(config, name="mobilebert"):
    """A built `MobileBertForPreTraining` for `config`."""
    model = MobileBertForPreTraining(config, name=name)
    model.build()
    return model


def load_checkpoint(path, config_file=None, scope="", name="mobilebert"):
    """An original checkpoint -> (built `MobileBertForPreTraining`, kind).

    Args:
      path: a folder holding `bert_config.json` and `model.ckpt.*` (or a `checkpoint` file),
        or a checkpoint prefix.
      config_file: the bert_config.json when it is not next to the checkpoint.
      scope: prefix of the model's names in the checkpoint, e.g. "teacher/" to read the
        teacher out of a MobileBERT distillation checkpoint.
      name: the Keras name of the returned model.

    A config that contradicts the variables raises, naming the variable; the checkpoint's
    MobileBERT-only names and the config's kind must agree.
    """
    if config_file is None:
        folder = path if tf.io.gfile.isdir(path) else posixpath.dirname(path)
        config_file = posixpath.join(folder, BERT_CONFIG)
    config, kind = read_bert_config(config_file)
    prefix = _checkpoint_prefix(path)
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    ours = [n for n in shapes if n.startswith(scope + "bert/")]
    has_mobilebert_names = any(_MOBILEBERT_NAMES.search(n) for n in ours)
    if has_mobilebert_names != (kind == "mobilebert"):
        raise ValueError(
            f"{config_file} describes a {kind} but {prefix} "
            f"{'has' if has_mobilebert_names else 'lacks'} MobileBERT variables "
            "(FakeLayerNorm, bottleneck, embedding_transformation, ffn_layer_)."
        )
    model = new_model(config, name)
    names = original_names(model, scope)
    shapes_ours = {v.path: tuple(v.shape) for v in model.variables}
    values = {}
    for path_ours, name_original in names.items():
        if name_original not in shapes:
            raise ValueError(
                f"{prefix} has no variable {name_original!r} (needed for {path_ours})."
            )
        values[path_ours] = reference.from_dense_layout(
            path_ours,
            reader.get_tensor(name_original),
            shapes_ours[path_ours],
            name_original,
            prefix,
        )
    reference.assign_weights(model, values, prefix)
    used = set(names.values())
    unused = sorted(n for n in ours if n not in used and not n.endswith(("/adam_m", "/adam_v")))
    if unused:
        logging.warning("Variables of %s not converted: %s", prefix, ", ".join(unused))
    return model, kind


def original_weights(model, scope=""):
    """{original name: numpy array in BERT's layout} of a `MobileBertForPreTraining`."""
    names = original_names(model, scope)
    return {
        names[v.path]: reference.to_dense_layout(v.path, v.numpy())
        for v in model.variables
        if v.path in names
    }


def save_checkpoint(model, output_dir):
    """Writes `model` as an original checkpoint: bert_config.json and model.ckpt.*.

    The names are the original's, so the original code (and `load_checkpoint`) reads it.
    Returns the checkpoint prefix.
    """
    tf.io.gfile.makedirs(output_dir)
    write_bert_config(model.config, posixpath.join(output_dir, BERT_CONFIG))
    weights = original_weights(model)
    variables = {name: tf.Variable(np.asarray(value)) for name, value in weights.items()}
    prefix = posixpath.join(output_dir, "model.ckpt")
    # A name-keyed TF1-style checkpoint: tf.compat.v1 Saver keeps the names as given.
    saver = tf.compat.v1.train.Saver(var_list=variables)
    saver.save(None, prefix, write_meta_graph=False, write_state=True)
    return prefix
