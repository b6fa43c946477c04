"""Model sizes: the `model_sizes/<name>.json` files and the encoder shapes they resolve to.

`model_size` is a bundled size name (`small`, `base`, ...; see `available_model_sizes`) or the
path of a JSON file in the same format: BERT config keys (`hidden_size`, `num_hidden_layers`, ...),
the generator fractions, and optional `pretraining` / `finetuning` sections of config defaults.
`resolve_encoder_hparams` and `generator_hparams_from` turn a size into encoder hyperparameters as
the reference's `training_utils.get_bert_config` and `get_generator_config` do.
"""

import importlib.resources
import json
import pathlib

import tensorflow as tf

from electra_tf import fileio
from electra_tf.hparams import closest_match

BERT_CONFIG_DEFAULTS = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
}
ENCODER_KEYS = tuple(BERT_CONFIG_DEFAULTS) + ("embedding_size",)

# Top-level keys a model-size JSON may hold besides the encoder keys.
_SIZE_FILE_EXTRA_KEYS = (
    "description",
    "generator_hidden_size",
    "generator_layers",
    "pretraining",
    "finetuning",
)

# MobileBERT's encoder options (`modeling.mobilebert.MobileBertConfig`), by the original's names.
MOBILEBERT_KEYS = (
    "trigram_input",
    "use_bottleneck",
    "intra_bottleneck_size",
    "use_bottleneck_attention",
    "key_query_shared_bottleneck",
    "num_feedforward_networks",
    "normalization_type",
    "classifier_activation",
    "layer_norm_eps",
)

MODEL_SIZES_PACKAGE = "electra_tf.model_sizes"


def _model_sizes_dirs():
    """Directories that may hold bundled size files, in lookup order."""
    dirs = []
    try:
        dirs.append(importlib.resources.files(MODEL_SIZES_PACKAGE))
    except (ImportError, TypeError, ValueError, AttributeError):
        pass
    # Source checkout: <repo root>/model_sizes next to the electra_tf package.
    dirs.append(pathlib.Path(__file__).resolve().parents[2] / "model_sizes")
    return dirs


def available_model_sizes():
    """Sorted names of the bundled model sizes (``small``, ``base``, ...)."""
    names = set()
    for d in _model_sizes_dirs():
        try:
            for entry in d.iterdir():
                if entry.name.endswith(".json") and entry.is_file():
                    names.add(entry.name[: -len(".json")])
        except (OSError, FileNotFoundError, NotADirectoryError):
            continue
    return sorted(names)


def _looks_like_path(model_size):
    return (
        model_size.endswith(".json")
        or "/" in model_size
        or "\\" in model_size
        or fileio.has_scheme(model_size)
    )


def _validate_size_dict(d, source):
    if not isinstance(d, dict):
        raise ValueError("Model size %s must hold a JSON object" % source)
    allowed = set(ENCODER_KEYS) | set(_SIZE_FILE_EXTRA_KEYS) | set(MOBILEBERT_KEYS)
    for k in d:
        if k not in allowed:
            match = closest_match(k, allowed)
            raise ValueError(
                "Unknown key '%s' in model size %s%s. Allowed keys: %s"
                % (
                    k,
                    source,
                    " (did you mean '%s'?)" % match if match else "",
                    ", ".join(sorted(allowed)),
                )
            )
    for section in ("pretraining", "finetuning"):
        if section in d and not isinstance(d[section], dict):
            raise ValueError("'%s' in model size %s must be an object" % (section, source))
    return d


def is_mobilebert(size):
    """Whether a loaded size dict describes a MobileBERT encoder."""
    return any(key in size for key in MOBILEBERT_KEYS)


def load_model_size(model_size):
    """Loads a model-size description.

    Args:
      model_size: the name of a bundled size (see :func:`available_model_sizes`)
        or a path (any ``tf.io.gfile`` path) to a JSON file of the same format.

    Returns:
      A dict with the encoder hyperparameters (``hidden_size``,
      ``num_hidden_layers``, ``num_attention_heads``, ``intermediate_size``,
      optionally ``embedding_size`` and other BERT config keys), the generator
      fractions (``generator_hidden_size``, optionally ``generator_layers``), and
      optional ``"pretraining"`` / ``"finetuning"`` sections with size-dependent
      config defaults.

    Raises:
      ValueError: unknown size name (the message lists the available ones) or a
        malformed file.
    """
    if not isinstance(model_size, str) or not model_size:
        raise ValueError("model_size must be a non-empty string, got %r" % (model_size,))
    if _looks_like_path(model_size):
        if not tf.io.gfile.exists(model_size):
            raise ValueError("model_size file %s does not exist" % model_size)
        try:
            d = json.loads(fileio.read_text(model_size))
        except json.JSONDecodeError as e:
            raise ValueError("Could not parse model_size file %s: %s" % (model_size, e)) from e
        return _validate_size_dict(d, model_size)
    fname = model_size + ".json"
    for directory in _model_sizes_dirs():
        candidate = directory / fname
        try:
            if candidate.is_file():
                d = json.loads(candidate.read_text(encoding="utf-8"))
                return _validate_size_dict(d, "'%s'" % model_size)
        except (OSError, FileNotFoundError, NotADirectoryError):
            continue
    available = available_model_sizes()
    match = closest_match(model_size, available)
    raise ValueError(
        "Unknown model_size '%s'%s. Available sizes: %s (or give the path of a "
        "JSON file)."
        % (
            model_size,
            " (did you mean '%s'?)" % match if match else "",
            ", ".join(available) if available else "(none found)",
        )
    )


def resolve_encoder_hparams(
    model_size, vocab_size=None, overrides=None, embedding_size=None, size_dict=None
):
    """Discriminator/encoder hyperparameters for ``model_size``.

    Mirrors the reference's ``training_utils.get_bert_config``: start from the
    size's hyperparameters, set ``vocab_size``, and apply ``overrides``. As in the
    reference, overriding ``hidden_size`` alone re-derives
    ``num_attention_heads = max(1, hidden_size // 64)`` and
    ``intermediate_size = 4 * hidden_size`` unless those are overridden too.

    Returns a dict with every BERT config key plus ``embedding_size``
    (``embedding_size`` argument, else the override, else the size file's, else
    ``hidden_size``).
    """
    size = size_dict if size_dict is not None else load_model_size(model_size)
    overrides = dict(overrides or {})
    args = dict(BERT_CONFIG_DEFAULTS)
    args.update({k: v for k, v in size.items() if k in BERT_CONFIG_DEFAULTS})
    if vocab_size is not None:
        args["vocab_size"] = vocab_size
    if "hidden_size" in overrides:
        hidden = overrides["hidden_size"]
        args["hidden_size"] = hidden
        args["num_attention_heads"] = max(1, hidden // 64)
        args["intermediate_size"] = 4 * hidden
    args.update({k: v for k, v in overrides.items() if k != "embedding_size"})
    if embedding_size is None:
        embedding_size = overrides.get("embedding_size", size.get("embedding_size"))
    args["embedding_size"] = args["hidden_size"] if embedding_size is None else embedding_size
    return args


def generator_hparams_from(
    disc_hparams,
    generator_hidden_size=0.25,
    generator_layers=1.0,
    untied_generator_embeddings=False,
):
    """Generator hyperparameters, following the reference's get_generator_config.

    hidden = round(disc hidden * generator_hidden_size),
    layers = round(disc layers * generator_layers), intermediate = 4 * hidden,
    heads = max(1, hidden // 64); other keys are copied from the
    discriminator. ``embedding_size`` is the discriminator's (the token embeddings
    are shared) unless ``untied_generator_embeddings``, where the generator has
    its own embeddings of its hidden size.
    """
    gen = dict(disc_hparams)
    hidden = int(round(disc_hparams["hidden_size"] * generator_hidden_size))
    gen["hidden_size"] = hidden
    gen["num_hidden_layers"] = int(round(disc_hparams["num_hidden_layers"] * generator_layers))
    gen["intermediate_size"] = 4 * hidden
    gen["num_attention_heads"] = max(1, hidden // 64)
    if untied_generator_embeddings:
        gen["embedding_size"] = hidden
    else:
        gen["embedding_size"] = disc_hparams.get("embedding_size", disc_hparams["hidden_size"])
    if hidden < 1 or gen["num_hidden_layers"] < 1:
        raise ValueError(
            "generator_hidden_size=%r / generator_layers=%r give an empty generator "
            "(hidden %d, layers %d)"
            % (generator_hidden_size, generator_layers, hidden, gen["num_hidden_layers"])
        )
    return gen


# The reference's debug mode shrinks the transformer (pre-training and fine-tuning alike).
DEBUG_MODEL = {
    "num_hidden_layers": 3,
    "hidden_size": 144,
    "intermediate_size": 144 * 4,
    "num_attention_heads": 4,
}
