"""Original MobileBERT / BERT TF1 checkpoints (`bert/...`, `cls/predictions/...`) <-> ours.

Reads a folder holding `bert_config.json` and `model.ckpt.*` as google-research's MobileBERT,
ymcui/Chinese-MobileBERT and the BERT/RoBERTa teachers publish them, into a
`MobileBertForPreTraining` (`electra_tf.modeling.mobilebert`). A plain BERT is the same network
with every MobileBERT option off, so teachers and students share one code path; `kind` tells
them apart by their config keys and variable names.

Name mapping (first matching rule, on paths relative to our encoder or head; NORM is
`FakeLayerNorm` for `no_norm`, `LayerNorm` for `layer_norm`) is the table in
`electra_tf.modeling.mobilebert`'s docstring, written out in `_ENCODER_NAMES` / `_HEAD_NAMES`.
Attention kernels change layout (BERT's [in, N*D] <-> our [in, N, D]) with
`reference.to_dense_layout` / `from_dense_layout`.

Hugging Face: `save_hf` writes a `MobileBertForPreTraining` folder (a `BertForMaskedLM` for a
plain BERT) that `from_pretrained` loads with the same outputs; `load_hf` reads such folders
(also ones transformers wrote) back. HF names follow the same tables' last column;
`extra_output_weights` [V, H - E] is HF's `cls.predictions.dense.weight` transposed.

Command line (until `electra-convert` learns these formats):
  python -m electra_tf.conversion.mobilebert --from reference --to hf --input DIR --output OUT
  python -m electra_tf.conversion.mobilebert --from hf --to reference --input HF --output DIR
"""

import dataclasses
import json
import posixpath
import re

import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf.conversion import huggingface, reference
from electra_tf.modeling import networks
from electra_tf.modeling.config import BertConfig
from electra_tf.modeling.mobilebert import MobileBertConfig, MobileBertForPreTraining
from electra_tf.training import model_dir as model_dir_lib

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

# Our path inside the encoder / head -> (the original TF1 name after "bert/" / "cls/predictions/",
# the HF name after the prefix "mobilebert." / "bert."); the first matching pattern wins. In HF
# names huggingface's leaves rename the leaf (kernel/gamma -> weight, beta/bias -> bias). BERT's
# names are the MobileBERT ones that a plain BERT has.
_ENCODER_NAMES = (
    (
        r"^embeddings/(word|position|token_type)_embeddings$",
        r"embeddings/\1_embeddings",
        r"embeddings.\1_embeddings.weight",
    ),
    (
        r"^embeddings/embedding_transformation/",
        "embeddings/embedding_transformation/",
        "embeddings.embedding_transformation.",
    ),
    (r"^embeddings/norm/", "embeddings/{norm}/", "embeddings.LayerNorm."),
    (
        r"^layer_(\d+)/bottleneck_(input|attention)/",
        r"encoder/layer_\1/bottleneck/\2/dense/",
        r"encoder.layer.\1.bottleneck.\2.dense.",
    ),
    (
        r"^layer_(\d+)/bottleneck_(input|attention)_norm/",
        r"encoder/layer_\1/bottleneck/\2/{norm}/",
        r"encoder.layer.\1.bottleneck.\2.LayerNorm.",
    ),
    (
        r"^layer_(\d+)/attention/(query|key|value)/",
        r"encoder/layer_\1/attention/self/\2/",
        r"encoder.layer.\1.attention.self.\2.",
    ),
    (
        r"^layer_(\d+)/attention/output/",
        r"encoder/layer_\1/attention/output/dense/",
        r"encoder.layer.\1.attention.output.dense.",
    ),
    (
        r"^layer_(\d+)/attention_norm/",
        r"encoder/layer_\1/attention/output/{norm}/",
        r"encoder.layer.\1.attention.output.LayerNorm.",
    ),
    (
        r"^layer_(\d+)/ffn_layer_(\d+)/(intermediate|output)/",
        r"encoder/layer_\1/ffn_layer_\2/\3/dense/",
        r"encoder.layer.\1.ffn.\2.\3.dense.",
    ),
    (
        r"^layer_(\d+)/ffn_layer_(\d+)/output_norm/",
        r"encoder/layer_\1/ffn_layer_\2/output/{norm}/",
        r"encoder.layer.\1.ffn.\2.output.LayerNorm.",
    ),
    (
        r"^layer_(\d+)/(intermediate|output)/",
        r"encoder/layer_\1/\2/dense/",
        r"encoder.layer.\1.\2.dense.",
    ),
    (
        r"^layer_(\d+)/output_norm/",
        r"encoder/layer_\1/output/{norm}/",
        r"encoder.layer.\1.output.LayerNorm.",
    ),
    (
        r"^layer_(\d+)/output_bottleneck/",
        r"encoder/layer_\1/output/bottleneck/dense/",
        r"encoder.layer.\1.output.bottleneck.dense.",
    ),
    (
        r"^layer_(\d+)/output_bottleneck_norm/",
        r"encoder/layer_\1/output/bottleneck/{norm}/",
        r"encoder.layer.\1.output.bottleneck.LayerNorm.",
    ),
    (r"^pooler/", "pooler/dense/", "pooler.dense."),
)
_HEAD_NAMES = (
    (r"^dense/", "transform/dense/", "cls.predictions.transform.dense."),
    (r"^layer_norm/", "transform/LayerNorm/", "cls.predictions.transform.LayerNorm."),
    (r"^output_bias$", "output_bias", "cls.predictions.bias"),
    (r"^extra_output_weights$", "extra_output_weights", "cls.predictions.dense.weight"),
)
# The column of each format in the rows above.
_ORIGINAL, _HF = 1, 2


def _rename(local, rules, column, norm, what):
    for rule in rules:
        name, count = re.subn(rule[0], rule[column], local, count=1)
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
        (model.encoder, _ENCODER_NAMES, "bert/"),
        (model.mlm_head, _HEAD_NAMES, "cls/predictions/"),
    ):
        for variable in _own_variables(layer):
            local = f"/{variable.path}".split(f"/{layer.name}/", 1)[1]
            names[variable.path] = scope + root + _rename(local, rules, _ORIGINAL, norm, layer.name)
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
    unused = sorted(
        n
        for n in shapes
        if n.startswith((scope + "bert/", scope + "cls/"))
        and n not in used
        and not n.endswith(("/adam_m", "/adam_v"))
    )
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


# ----- Hugging Face folders -----------------------------------------------------------------------

_HF_LEAVES = {"kernel": "weight", "gamma": "weight", "beta": "bias", "bias": "bias"}
_HF_ARCHITECTURES = {"mobilebert": "MobileBertForPreTraining", "bert": "BertForMaskedLM"}
_HF_PREFIXES = {"mobilebert": "mobilebert.", "bert": "bert."}
# HF config keys of a BERT (model_type "bert") that MobileBertConfig has.
_HF_BERT_KEYS = tuple(field.name for field in dataclasses.fields(BertConfig))


def hf_names(model, kind):
    """{our variable path: HF parameter name} for a `MobileBertForPreTraining` of `kind`."""
    names = {}
    for layer, rules, prefix in (
        (model.encoder, _ENCODER_NAMES, _HF_PREFIXES[kind]),
        (model.mlm_head, _HEAD_NAMES, ""),
    ):
        for variable in _own_variables(layer):
            local = f"/{variable.path}".split(f"/{layer.name}/", 1)[1]
            name = _rename(local, rules, _HF, "", layer.name)
            head, _, leaf = name.rpartition(".")
            if leaf in _HF_LEAVES and not name.endswith(("_embeddings.weight", "dense.weight")):
                name = f"{head}.{_HF_LEAVES[leaf]}"
            names[variable.path] = prefix + name
    return names


def _to_hf(path, value):
    if path.endswith("extra_output_weights"):
        return value.T  # [V, H - E] -> Linear(V, H - E).weight [H - E, V]
    return huggingface.to_hf(path, value)


def _from_hf(path, value, shape, name, source):
    if path.endswith("extra_output_weights"):
        reference.check_shape(value.T, shape, path, name, source)
        return np.asarray(value.T, np.float32)
    return huggingface.from_hf(path, value, shape, name, source)


def hf_config(config, kind):
    """The config.json of `config` as an HF `MobileBertForPreTraining` / `BertForMaskedLM`."""
    if kind == "bert":
        values = {k: getattr(config, k) for k in _HF_BERT_KEYS}
    else:
        values = config.to_dict()
        if config.normalization_type == "layer_norm" and config.layer_norm_eps != 1e-5:
            logging.warning(
                "transformers' MobileBERT uses LayerNorm eps 1e-5 in its embeddings and block "
                "outputs whatever layer_norm_eps (%g) says: its outputs will differ slightly.",
                config.layer_norm_eps,
            )
    values.update(model_type=kind, architectures=[_HF_ARCHITECTURES[kind]])
    return values


def save_hf(model, output_dir, vocab_file, kind=None, do_lower_case=True):
    """Writes `model` as a Hugging Face folder: `MobileBertForPreTraining`, or `BertForMaskedLM`
    for a plain BERT (`kind` defaults to `config_kind(model.config)`).

    The folder holds config.json, model.safetensors (the tied decoder written out too),
    vocab.txt, tokenizer_config.json and special_tokens_map.json. A BERT's pooler is written
    (`BertModel` reads it; `BertForMaskedLM` has none and says so). MobileBERT's
    next-sentence head (`cls.seq_relationship`) is not part of our model: transformers
    initializes it. Returns `output_dir`.
    """
    kind = kind or config_kind(model.config)
    c = model.config
    if c.use_bottleneck and not (c.use_bottleneck_attention or c.key_query_shared_bottleneck):
        raise ValueError(
            "transformers' MobileBERT cannot hold use_bottleneck with queries and keys from the "
            "block input (its query/key take the bottleneck width): set "
            "use_bottleneck_attention or key_query_shared_bottleneck."
        )
    if kind == "bert" and config_kind(model.config) != "bert":
        raise ValueError(
            "Only a plain BERT (every MobileBERT option off) can be a BertForMaskedLM."
        )
    names = hf_names(model, kind)
    tensors = {
        names[v.path]: np.ascontiguousarray(_to_hf(v.path, v.numpy()))
        for v in model.variables
        if v.path in names
    }
    prefix = _HF_PREFIXES[kind]
    tensors["cls.predictions.decoder.weight"] = tensors[
        prefix + "embeddings.word_embeddings.weight"
    ]
    tensors["cls.predictions.decoder.bias"] = tensors["cls.predictions.bias"]
    if kind == "mobilebert" and model.mlm_head.extra_output_weights is None:
        # HF always has the extra output weights; with embedding_size == hidden_size they are
        # [0, V].
        tensors["cls.predictions.dense.weight"] = np.zeros((0, model.config.vocab_size), np.float32)
    config = hf_config(model.config, kind)
    return huggingface.write_folder(
        output_dir, config, tensors, vocab_file, do_lower_case, tokenizer_class="BertTokenizer"
    )


def read_hf_config(folder):
    """config.json of an HF MobileBERT or BERT folder -> (MobileBertConfig, kind)."""
    path, values = huggingface.read_config_json(folder, tuple(_HF_PREFIXES))
    kind = values["model_type"]
    keys = _HF_BERT_KEYS if kind == "bert" else tuple(MobileBertConfig.__dataclass_fields__)
    try:
        config = MobileBertConfig.from_dict({k: values[k] for k in keys if k in values})
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from e
    return config, kind


def load_hf(folder, name="mobilebert"):
    """An HF MobileBERT or BERT folder (a pre-training / masked-LM model, or a bare encoder) ->
    (built `MobileBertForPreTraining`, kind).

    Weights the folder lacks (the MLM head of a bare encoder, the pooler of a masked LM) stay
    at their initial values, with a warning naming them; the next-sentence head is dropped.
    """
    config, kind = read_hf_config(folder)
    state = huggingface.read_state(folder)
    prefix = _HF_PREFIXES[kind]
    if prefix + "embeddings.word_embeddings.weight" not in state:
        prefix = ""
    if prefix + "embeddings.word_embeddings.weight" not in state:
        raise ValueError(f"{folder} has no embeddings.word_embeddings.weight: not a {kind}.")
    model = new_model(config, name)
    shapes = {v.path: tuple(v.shape) for v in model.variables}
    encoder_paths = {v.path for v in _own_variables(model.encoder)}
    values, missing = {}, []
    for path, hf_name in hf_names(model, kind).items():
        if path in encoder_paths:
            hf_name = prefix + hf_name.split(".", 1)[1]
        if hf_name in state:
            values[path] = _from_hf(path, state[hf_name], shapes[path], hf_name, folder)
        elif path in encoder_paths and "/pooler/" not in path:
            raise ValueError(f"{folder} has no {hf_name!r} (needed for {path}).")
        else:
            missing.append(hf_name)
    if missing:
        logging.warning("%s lacks %s: initialized at random.", folder, ", ".join(missing))
    reference.assign_weights(model, values, folder)
    return model, kind


# ----- command line -------------------------------------------------------------------------------

_FORMATS = ("reference", "hf", "ours")


# ----- this project's model directories ----------------------------------------------------------


def _ours(config):
    """The layout of our MobileBERT model dirs (the distiller's): encoder `electra/...`, head
    `mlm_head/...`, so fine-tuning restores the encoder by name."""
    model = MobileBertForPreTraining(config, encoder_name=networks.DISCRIMINATOR, name="student")
    model.build_parts()
    return model


def is_model_dir(path):
    """Whether `path` (a folder or `ckpt-N` prefix) is one of our MobileBERT model dirs."""
    encoder = model_dir_lib.describe(path)[model_dir_lib.ENCODER_CONFIG]
    return isinstance(encoder, dict) and encoder.get(networks.MODEL_TYPE) == networks.MOBILEBERT


def load_model_dir(path):
    """One of our MobileBERT model dirs (its latest checkpoint, or a `ckpt-N`) -> built
    `MobileBertForPreTraining` with the weights restored by name."""
    folder = model_dir_lib.checkpoint_dir(path)
    values = model_dir_lib.read(folder, model_dir_lib.ENCODER_CONFIG, missing_ok=False)
    model = _ours(networks.encoder_config_from_dict(values))
    model_dir_lib.restore_variables(model.trainable_variables, path, "--input")
    return model


def save_model_dir(model, model_dir, vocab_file=None):
    """Writes a `MobileBertForPreTraining` as our model dir: ckpt-0 (`electra/...`,
    `mlm_head/...`), encoder_config.json (`"model_type": "mobilebert"`) and the vocabulary, which
    run_finetuning.py and run_distillation.py read; returns the checkpoint path."""
    ours = _ours(model.config)
    ours.set_weights(model.get_weights())
    checkpoint = model_dir_lib.new_checkpoint(ours)
    path = tf.train.CheckpointManager(checkpoint, model_dir, max_to_keep=None).save(0)
    encoder = networks.encoder_config_to_dict(model.config)
    model_dir_lib.write(model_dir, model_dir_lib.ENCODER_CONFIG, encoder)
    if vocab_file:
        tf.io.gfile.copy(vocab_file, posixpath.join(model_dir, model_dir_lib.VOCAB), overwrite=True)
    return path


def is_bert_family(source, input_path):
    """Whether `electra-convert` should read `input_path` with this module: an original
    BERT/MobileBERT checkpoint (`bert_config.json` beside it) or a Hugging Face MobileBERT folder."""
    folder = input_path if tf.io.gfile.isdir(input_path) else posixpath.dirname(input_path)
    if source == "reference":
        return tf.io.gfile.exists(posixpath.join(folder, "bert_config.json"))
    if source == "ours":
        return is_model_dir(input_path)
    if source == "hf":
        config = posixpath.join(folder, "config.json")
        if tf.io.gfile.exists(config):
            with tf.io.gfile.GFile(config) as f:
                return json.load(f).get("model_type") == "mobilebert"
    return False


def convert(source, target, input_path, output, vocab_file=None):
    """Reads `input_path` as `source` ("reference": an original checkpoint folder with its
    bert_config.json; "hf": a Hugging Face folder) and writes `output` as `target`.

    Returns the (model, kind) read. The vocabulary defaults to the input's vocab.txt.
    """
    if source not in _FORMATS or target not in _FORMATS:
        raise ValueError(f"--from and --to must be one of {', '.join(_FORMATS)}.")
    if source == target:
        raise ValueError(f"--from and --to are both {source!r}: nothing to convert.")
    if tf.io.gfile.exists(output) and tf.io.gfile.listdir(output):
        raise ValueError(f"{output} is not empty: choose a new or empty --output folder.")
    folder = input_path if tf.io.gfile.isdir(input_path) else posixpath.dirname(input_path)
    if vocab_file is None and tf.io.gfile.exists(posixpath.join(folder, "vocab.txt")):
        vocab_file = posixpath.join(folder, "vocab.txt")
    if target == "hf" and vocab_file is None:
        raise ValueError("--to hf needs a vocabulary for the tokenizer files: --vocab_file.")
    if vocab_file is not None and not tf.io.gfile.exists(vocab_file):
        raise ValueError(f"--vocab_file {vocab_file} does not exist.")
    if source == "reference":
        model, kind = load_checkpoint(input_path)
    elif source == "ours":
        model, kind = load_model_dir(input_path), "mobilebert"
    else:
        model, kind = load_hf(input_path)
    if target == "hf":
        save_hf(model, output, vocab_file, kind=kind)
    elif target == "ours":
        if kind != "mobilebert":
            raise ValueError(
                f"{input_path} is a BERT ({kind}) checkpoint: --to ours takes MobileBERT models; "
                "a BERT teacher is read directly by run_distillation.py."
            )
        save_model_dir(model, output, vocab_file)
    else:
        save_checkpoint(model, output)
        if vocab_file:
            tf.io.gfile.copy(vocab_file, posixpath.join(output, "vocab.txt"), overwrite=True)
    return model, kind
