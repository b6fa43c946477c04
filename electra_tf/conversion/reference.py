"""TensorFlow checkpoints -> `PretrainingModel`, and this project's own model directories.

Two name-keyed layouts meet here:
- the original ELECTRA's TF1 checkpoints (`electra/encoder/layer_0/attention/self/query/kernel`,
  dense [H, H] attention kernels), read with `tf.train.load_checkpoint`; sizes come from the
  variable shapes, and what shapes cannot tell (the number of attention heads) from `hparams`;
- `run_pretraining.py` model directories (`ckpt-N`, `encoder_config.json`, `pretrain_config.json`),
  read, and written so that pre-training continues from them.

A built `PretrainingModel` is the hub every conversion goes through; the helpers that fill one
from named arrays (`collect_weights`, `assign_weights`, the dense-layout reshapes) are shared with
`electra_tf.conversion.huggingface`.
"""

import posixpath
import re

import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf import fileio, tokenization
from electra_tf.modeling import EncoderConfig, sizes
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.model import build_pretraining_model
from electra_tf.pretraining.trainer import create_optimizer
from electra_tf.training import model_dir as model_dir_lib

# Top-level scopes of a PretrainingModel's variable paths.
PARTS = (
    "electra",
    "generator",
    "generator_predictions",
    "discriminator_predictions",
    # Electric's two-tower cloze generator
    "generator_ltr",
    "generator_rtl",
    "cloze_predictions",
)
# Hparams that fix the model's variables: what `run_pretraining.py` must be given to resume.
ARCHITECTURE_HPARAMS = (
    "model_size",
    "model_hparam_overrides",
    "vocab_size",
    "embedding_size",
    "electra_objective",
    "electric_objective",
    "two_tower_generator",
    "uniform_generator",
    "untied_generator",
    "untied_generator_embeddings",
    "generator_hidden_size",
    "generator_layers",
)
# Optimizer state that TF1 pre-training checkpoints hold beside the weights.
_OPTIMIZER_SUFFIXES = ("/adam_m", "/adam_v")

# Our path -> the reference's name: applied in order, each at most once.
_REFERENCE_RULES = (
    (r"^generator/generator_embeddings/", "generator/embeddings/"),
    (r"/layer_(\d+)/attention/(query|key|value)/", r"/encoder/layer_\1/attention/self/\2/"),
    (r"/layer_(\d+)/attention/output/", r"/encoder/layer_\1/attention/output/dense/"),
    (r"/layer_(\d+)/attention_layer_norm/", r"/encoder/layer_\1/attention/output/LayerNorm/"),
    (r"/layer_(\d+)/intermediate/", r"/encoder/layer_\1/intermediate/dense/"),
    (r"/layer_(\d+)/output/", r"/encoder/layer_\1/output/dense/"),
    (r"/layer_(\d+)/output_layer_norm/", r"/encoder/layer_\1/output/LayerNorm/"),
    (r"/layer_norm/", "/LayerNorm/"),
    (r"/dense_prediction/", "/dense_1/"),
)


# ----- layouts ------------------------------------------------------------------------------------


def is_rng_state(path):
    """Dropout's random state: saved by the trainer, never converted."""
    return path.endswith("seed_generator_state")


def to_dense_layout(path, value):
    """Our array -> BERT's layout: attention kernels [H, N, D] / [N, D, H] become [H, H], head-split
    biases [N, D] become [H]; other arrays are unchanged."""
    if path.endswith("attention/output/kernel"):
        return np.reshape(value, (-1, value.shape[-1]))
    if path.endswith("kernel"):
        return np.reshape(value, (value.shape[0], -1))
    if path.endswith("bias"):
        return np.reshape(value, (-1,))
    return value


def check_shape(value, expected, path, name, source):
    """Raises, naming both sides, when source array `name` does not have the `expected` shape."""
    if tuple(value.shape) != tuple(expected):
        raise ValueError(
            f"{source}: {name!r} has shape {list(value.shape)} but {path} needs {list(expected)}. "
            "The sizes given (config or --hparams) do not match these weights."
        )


def from_dense_layout(path, value, shape, name, source):
    """BERT's layout -> our variable `path` of `shape` (see `check_shape`)."""
    check_shape(value, to_dense_layout(path, np.empty(shape, np.float32)).shape, path, name, source)
    return np.reshape(np.asarray(value, np.float32), shape)


def reference_name(path):
    """The TF1 reference checkpoint's name for our variable `path`."""
    for pattern, replacement in _REFERENCE_RULES:
        path = re.sub(pattern, replacement, path, count=1)
    return path


# ----- filling a model ----------------------------------------------------------------------------


def new_model(config, vocab_file=None):
    """A built `PretrainingModel` for `config`.

    The [MASK] and special-token ids matter only to `compute` (training-time masking); they come
    from `vocab_file` when given, else are 0 (enough for inference and conversion).
    """
    mask_id, special_ids = 0, (0,)
    if vocab_file:
        vocab = tokenization.load_vocab(vocab_file)
        mask_id = vocab.get("[MASK]", 0)
        special_ids = sorted({vocab.get(t, 0) for t in ("[PAD]", "[CLS]", "[SEP]", "[MASK]")})
    model = build_pretraining_model(config, mask_id, special_ids)
    model.build_all(batch_size=1)
    model.pretrain_config = config  # what conversions write back (casing, architecture hparams)
    return model


def model_weights(model):
    """{variable path: numpy array} of a model or layer's weights (random states left out)."""
    return {v.path: v.numpy() for v in model.variables if not is_rng_state(v.path)}


def collect_weights(model, parts, lookup, source):
    """{path: array} for every variable of `model` in the scopes `parts`.

    `lookup(path, shape)` returns (source name, array in our layout), with None for the array when
    the source lacks that name, which raises naming it.
    """
    values = {}
    for variable in model.variables:
        path = variable.path
        if is_rng_state(path) or path.split("/")[0] not in parts:
            continue
        name, value = lookup(path, tuple(variable.shape))
        if value is None:
            raise ValueError(f"{source} has no variable {name!r} (needed for {path}).")
        values[path] = value
    return values


def assign_weights(model, values, source):
    """Sets variables from {path: array}; logs the scopes left at their initial values."""
    variables = {v.path: v for v in model.variables if not is_rng_state(v.path)}
    for path, value in values.items():
        variables[path].assign(value)
    fresh = sorted({path.split("/")[0] for path in variables if path not in values})
    if fresh:
        logging.warning(
            "%s has no weights for %s: initialized at random.", source, ", ".join(fresh)
        )


def pretraining_config(
    encoder, hparams=None, generator=None, defaults=None, source="the checkpoint", **structure
):
    """A `PretrainingConfig` for sizes read from a checkpoint, checked against `hparams`.

    Args:
      encoder: {encoder key: (value, where it was read)} of the discriminator; `hparams` may not
        contradict these.
      hparams: PretrainingConfig hparams; encoder keys may be given at the top level or in
        `model_hparam_overrides`, e.g. `num_attention_heads`, which shapes cannot tell (default
        max(1, hidden_size // 64), as the reference derives it).
      generator: the same for a separate generator, which the config must reproduce.
      defaults: encoder keys found in the source that `hparams` may change (dropout rates...).
      structure: hparams that the source's variables imply (electra_objective, ...); `hparams` win.
    """
    hparams = dict(hparams or {})
    given = dict(hparams.pop("model_hparam_overrides", {}))
    for key in sizes.ENCODER_KEYS:
        if key in hparams:
            given[key] = hparams.pop(key)
    arch = dict(defaults or {})
    for key, (value, where) in encoder.items():
        if key in given and given[key] != value:
            raise ValueError(
                f"--hparams gives {key}={given[key]!r} but {source} has {key}={value!r} ({where})."
            )
        arch[key] = value
    arch.update({k: v for k, v in given.items() if k not in encoder})
    arch.setdefault("num_attention_heads", max(1, arch["hidden_size"] // 64))
    values = dict(structure)
    if generator:
        values["generator_hidden_size"] = generator["hidden_size"][0] / encoder["hidden_size"][0]
        values["generator_layers"] = (
            generator["num_hidden_layers"][0] / encoder["num_hidden_layers"][0]
        )
    values.update(hparams)
    values.update(
        vocab_size=arch.pop("vocab_size"),
        embedding_size=arch.pop("embedding_size"),
        model_hparam_overrides=arch,
    )
    config = PretrainingConfig(values.pop("model_name", "converted"), "", **values)
    EncoderConfig.from_dict(config.model_hparams())  # e.g. heads that do not divide hidden_size
    if generator:
        derived = config.generator_hparams()
        for key, (value, where) in generator.items():
            if derived[key] != value:
                raise ValueError(
                    f"{source}'s generator has {key}={value!r} ({where}) but PretrainingConfig derives "
                    f"{key}={derived[key]!r} (hidden = generator_hidden_size x discriminator hidden, "
                    "intermediate = 4 x hidden, heads = max(1, hidden // 64), other keys from the "
                    "discriminator): this generator cannot be rebuilt."
                )
    return config


# ----- the reference's TF1 checkpoints ------------------------------------------------------------


def _reference_sizes(shapes, scope):
    """{encoder key: (value, variable it was read from)} of the encoder under `scope`, or None."""
    query = f"{scope}/encoder/layer_0/attention/self/query/kernel"
    if query not in shapes:
        return None
    layers = 0
    while f"{scope}/encoder/layer_{layers}/attention/self/query/kernel" in shapes:
        layers += 1
    intermediate = f"{scope}/encoder/layer_0/intermediate/dense/kernel"
    sizes = {
        "hidden_size": (shapes[query][1], query),
        "num_hidden_layers": (layers, f"{scope}/encoder/layer_0..{layers - 1}"),
        "intermediate_size": (shapes[intermediate][1], intermediate),
    }
    words = f"{scope}/embeddings/word_embeddings"
    if words in shapes:
        positions = f"{scope}/embeddings/position_embeddings"
        types = f"{scope}/embeddings/token_type_embeddings"
        sizes.update(
            vocab_size=(shapes[words][0], words),
            embedding_size=(shapes[words][1], words),
            max_position_embeddings=(shapes[positions][0], positions),
            type_vocab_size=(shapes[types][0], types),
        )
    return sizes


def read_reference_config(path, hparams=None):
    """The `PretrainingConfig` of a TF1 reference checkpoint (a folder or a prefix)."""
    shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    disc = _reference_sizes(shapes, "electra")
    if disc is None or "vocab_size" not in disc:
        raise ValueError(
            f"{path} is not an ELECTRA checkpoint: it has no electra/embeddings and "
            "electra/encoder/layer_0 variables."
        )
    gen = _reference_sizes(shapes, "generator")
    has_disc_head = "discriminator_predictions/dense/kernel" in shapes
    has_gen_head = "generator_predictions/output_bias" in shapes
    two_tower = _reference_sizes(shapes, "generator_ltr")
    if two_tower is not None:
        # Electric (or ELECTRA with the two-tower generator: the variables are the same; pass
        # {"electric_objective": false} for the latter).
        if not has_disc_head or "cloze_predictions/output_bias" not in shapes:
            raise ValueError(
                f"{path} has generator_ltr but no discriminator_predictions or cloze_predictions: "
                "not a complete two-tower (Electric) checkpoint."
            )
        gen = two_tower
        structure = {
            "electric_objective": True,
            "two_tower_generator": True,
            "untied_generator_embeddings": "vocab_size" in gen,
        }
    elif not (has_disc_head or has_gen_head):
        raise ValueError(
            f"{path} has neither discriminator_predictions nor generator_predictions: "
            "not a pre-training checkpoint."
        )
    else:
        structure = {
            "electra_objective": has_disc_head,
            "uniform_generator": not has_gen_head,
            "untied_generator": gen is not None,
            "untied_generator_embeddings": bool(gen and "vocab_size" in gen),
        }
    if gen is not None:
        gen.setdefault("embedding_size", disc["embedding_size"])
        gen.update(
            vocab_size=disc["vocab_size"],
            max_position_embeddings=disc["max_position_embeddings"],
            type_vocab_size=disc["type_vocab_size"],
        )
    return pretraining_config(disc, hparams, generator=gen, source=path, **structure)


def load_reference_checkpoint(path, hparams=None, vocab_file=None):
    """A TF1 checkpoint written by google-research/electra -> `PretrainingModel`.

    Args:
      path: the checkpoint's folder (its `checkpoint` file names the latest) or prefix.
      hparams: PretrainingConfig hparams and encoder keys the shapes cannot tell, e.g.
        {"num_attention_heads": 4}; sizes that contradict the variables raise.
      vocab_file: gives the model its [MASK] id (see `new_model`).
    """
    config = read_reference_config(path, hparams)
    reader = tf.train.load_checkpoint(path)
    shapes = reader.get_variable_to_shape_map()
    model = new_model(config, vocab_file)
    used = set()

    def lookup(our_path, shape):
        name = reference_name(our_path)
        if name not in shapes:
            return name, None
        used.add(name)
        return name, from_dense_layout(our_path, reader.get_tensor(name), shape, name, path)

    assign_weights(model, collect_weights(model, PARTS, lookup, path), path)
    unused = sorted(
        n
        for n in shapes
        if n not in used and n != "global_step" and not n.endswith(_OPTIMIZER_SUFFIXES)
    )
    if unused:
        logging.warning("Variables of %s not converted: %s", path, ", ".join(unused))
    return model


# ----- this project's model directories -----------------------------------------------------------


def read_model_dir_config(model_dir):
    """The `PretrainingConfig` saved in a pre-trained model directory."""
    saved = model_dir_lib.read(model_dir, model_dir_lib.PRETRAIN_CONFIG)
    if saved is None:
        raise FileNotFoundError(
            f"{fileio.join(model_dir, model_dir_lib.PRETRAIN_CONFIG)} not found: not a "
            "run_pretraining.py model directory."
        )
    return PretrainingConfig.from_hparams(
        saved, fileio.basename(model_dir), fileio.dirname(fileio.dirname(model_dir))
    )


def load_model_dir(path, vocab_file=None):
    """A `run_pretraining.py` model dir (its latest checkpoint) or one `ckpt-N` in it ->
    `PretrainingModel`; the sizes come from its pretrain_config.json."""
    checkpoint = model_dir_lib.resolve_checkpoint(path, "--input")
    model = new_model(read_model_dir_config(model_dir_lib.checkpoint_dir(path)), vocab_file)
    keys = model_dir_lib.checkpoint_variables(checkpoint)
    reader = tf.compat.v1.train.NewCheckpointReader(checkpoint)

    def lookup(our_path, shape):
        if our_path not in keys:
            return our_path, None
        value = reader.get_tensor(keys[our_path])
        check_shape(value, shape, our_path, our_path, checkpoint)
        return our_path, value

    assign_weights(model, collect_weights(model, PARTS, lookup, checkpoint), checkpoint)
    return model


def architecture_hparams(config):
    """The `--hparams` that make `run_pretraining.py` build the same variables as `config`."""
    values = config.to_dict()
    return {k: values[k] for k in ARCHITECTURE_HPARAMS}


def save_model_dir(model, model_dir, vocab_file=None):
    """Writes `model` as a `run_pretraining.py` model dir, to continue pre-training from.

    `model_dir` should be DATA/models/NAME. Writes `ckpt-0` (the weights plus a fresh optimizer:
    the trainer restores both), encoder_config.json, pretrain_config.json (model.pretrain_config with its
    paths rebuilt for DATA and NAME) and a copy of `vocab_file` as vocab.txt.

    The checkpoint keys Dropout's random states by Keras' auto-numbered names, which count every
    layer made so far in the process: write from a fresh process (as `electra-convert` does) or after
    `keras.backend.clear_session()`, so they match the trainer's.
    Returns the checkpoint path.
    """
    model_dir = model_dir.rstrip("/")
    if tf.io.gfile.exists(model_dir) and tf.train.latest_checkpoint(model_dir):
        raise FileExistsError(
            f"{model_dir} already holds a checkpoint; pre-training would resume "
            "from it. Choose an empty directory."
        )
    config = PretrainingConfig.from_hparams(
        model.pretrain_config.to_dict(),
        fileio.basename(model_dir),
        fileio.dirname(fileio.dirname(model_dir)),
    )
    optimizer = create_optimizer(config)
    optimizer.build(model.trainable_variables)
    tf.io.gfile.makedirs(model_dir)
    checkpoint = model_dir_lib.new_checkpoint(model, optimizer)
    path = tf.train.CheckpointManager(checkpoint, model_dir, max_to_keep=None).save(
        checkpoint_number=0
    )
    model_dir_lib.write(
        model_dir, model_dir_lib.ENCODER_CONFIG, model.discriminator.config.to_dict()
    )
    model_dir_lib.write(model_dir, model_dir_lib.PRETRAIN_CONFIG, config.to_dict())
    if vocab_file:
        tf.io.gfile.copy(vocab_file, fileio.join(model_dir, model_dir_lib.VOCAB), overwrite=True)
    if posixpath.basename(posixpath.dirname(model_dir)) != "models":
        logging.warning(
            "run_pretraining.py looks for models in DATA/models/NAME; %s is not there.", model_dir
        )
    return path
