"""Shared helpers for hyperparameter handling.

* :func:`load_hparams` turns the ``--hparams`` command-line value (a JSON object
  string, a path to a JSON file on any ``tf.io.gfile`` filesystem, or ``None``)
  into a dict.
* :class:`HParams` is the base class of the configuration objects
  (``PretrainingConfig``, ``FinetuningConfig``): ``update`` refuses unknown keys
  and suggests the closest known one, ``to_dict``/``to_json``/``save_json`` dump
  the configuration.
* :func:`gfile_join` joins path components without ``os.path`` so that
  ``gs://`` and ``ram://`` locations stay intact.
* :func:`load_model_size` / :func:`available_model_sizes` /
  :func:`resolve_encoder_hparams` / :func:`generator_hparams_from` resolve the
  ``model_size`` hyperparameter (a bundled size name such as ``"small"`` or a
  path to a JSON file) into BERT-style encoder hyperparameters.
"""

import copy
import difflib
import importlib.resources
import json
import pathlib
import re

import tensorflow as tf

__all__ = [
    "BERT_CONFIG_DEFAULTS",
    "ENCODER_KEYS",
    "HParams",
    "available_model_sizes",
    "closest_match",
    "generator_hparams_from",
    "gfile_join",
    "load_hparams",
    "load_model_size",
    "resolve_encoder_hparams",
]

_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


# ---------------------------------------------------------------------------
# Paths and JSON loading
# ---------------------------------------------------------------------------


def _is_absolute(part):
    return part.startswith("/") or bool(_SCHEME_RE.match(part))


def gfile_join(base, *parts):
    """Joins path components with ``/``, keeping ``scheme://`` prefixes intact.

    Behaves like ``posixpath.join`` (an absolute component, or one carrying a
    ``scheme://`` prefix, restarts the path) but never goes through ``os.path``,
    so ``gfile_join("gs://b", "x")`` is ``"gs://b/x"`` and
    ``gfile_join("ram://", "x")`` is ``"ram://x"`` on every platform.
    """
    path = str(base)
    for part in parts:
        part = str(part)
        if not part:
            if path and not path.endswith("/"):
                path += "/"
            continue
        if _is_absolute(part) or not path:
            path = part
        elif path.endswith("/"):
            path += part
        else:
            path += "/" + part
    return path


def _gfile_dirname(path):
    match = _SCHEME_RE.match(path)
    prefix = match.group(0) if match else ""
    rest = path[len(prefix) :]
    head = rest.rsplit("/", 1)[0] if "/" in rest else ""
    return prefix + head


def _read_text(path):
    with tf.io.gfile.GFile(path, "r") as f:
        return f.read()


def load_hparams(value):
    """Returns the hyperparameter dict described by ``value``.

    Args:
      value: ``None`` or an empty string (no hyperparameters), a dict (copied),
        a JSON object string such as ``'{"learning_rate": 1e-4}'``, or the path
        of a JSON file readable with ``tf.io.gfile`` (local, ``gs://``,
        ``ram://`` ...).

    Raises:
      ValueError: the value is neither a JSON object nor an existing file, the
        JSON does not parse, or it does not hold an object.
    """
    if value is None:
        return {}
    if isinstance(value, dict):
        return copy.deepcopy(value)
    if isinstance(value, pathlib.PurePath):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(
            "hparams must be None, a dict, a JSON string or a path to a JSON file; "
            "got %r" % type(value).__name__
        )
    text = value.strip()
    if not text:
        return {}
    if text.startswith("{"):
        source = "the JSON string"
    else:
        if not tf.io.gfile.exists(text):
            raise ValueError(
                "hparams %r is neither a JSON object (it must start with '{') nor "
                "an existing file" % value
            )
        source = "file %s" % text
        text = _read_text(text)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError("Could not parse hparams from %s: %s" % (source, e)) from e
    if not isinstance(parsed, dict):
        raise ValueError(
            "hparams from %s must be a JSON object, got %s" % (source, type(parsed).__name__)
        )
    return parsed


def refuse_unused_tpu_keys(config):
    """Rejects the reference's TPUEstimator keys that no TPUStrategy run uses, unless at default."""
    if config.num_tpu_cores != 1:
        raise ValueError(
            "num_tpu_cores is not used: TPUStrategy finds the TPU cores itself; remove it."
        )
    if config.tpu_job_name is not None:
        raise ValueError(
            "tpu_job_name is not used: the TPU cluster resolver (tpu_name, tpu_zone, gcp_project) "
            "names the job; remove it."
        )


def closest_match(name, candidates):
    """Returns the candidate closest to ``name`` (difflib), or ``None``."""
    candidates = sorted(candidates)
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in candidates}
        matches = [
            lowered[m]
            for m in difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
        ]
    return matches[0] if matches else None


def _jsonable(value):
    """Returns a JSON-serializable copy of ``value`` or raises TypeError."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _jsonable(value.item())
    raise TypeError("not JSON serializable: %r" % (value,))


# ---------------------------------------------------------------------------
# Config base class
# ---------------------------------------------------------------------------


class HParams:
    """Base class for configuration objects holding hyperparameters.

    Every public instance attribute set in ``__init__`` is a hyperparameter (as
    in the reference, where ``update`` checks ``self.__dict__``); attributes
    whose names start with ``_`` are private and cannot be updated.
    """

    def hparam_names(self):
        """Sorted names of the hyperparameters ``update`` accepts."""
        return sorted(k for k in vars(self) if not k.startswith("_"))

    def _unknown_hparam_error(self, key):
        names = self.hparam_names()
        match = closest_match(str(key), names)
        msg = "Unknown hparam '%s'" % (key,)
        if match is not None:
            msg += "; did you mean '%s'?" % match
        else:
            msg += "."
        msg += " Known hparams of %s: %s" % (type(self).__name__, ", ".join(names))
        return ValueError(msg)

    def update(self, kwargs):
        """Sets the hyperparameters in ``kwargs``.

        All keys are checked before anything is changed: an unknown key raises
        ``ValueError`` naming the closest known hyperparameter and leaves the
        config untouched.
        """
        if kwargs is None:
            return self
        if not isinstance(kwargs, dict):
            raise ValueError("update() expects a dict, got %s" % type(kwargs).__name__)
        known = set(self.hparam_names())
        for k in kwargs:
            if k not in known:
                raise self._unknown_hparam_error(k)
        for k, v in kwargs.items():
            setattr(self, k, copy.deepcopy(v))
        return self

    def to_dict(self):
        """A JSON-serializable dict of the hyperparameters.

        Values that JSON cannot represent (callables, for instance) are skipped.
        """
        out = {}
        for k in self.hparam_names():
            try:
                out[k] = _jsonable(getattr(self, k))
            except TypeError:
                continue
        return out

    def to_json(self, indent=2):
        """The hyperparameters as a JSON string (sorted keys)."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True) + "\n"

    def save_json(self, path):
        """Writes :meth:`to_json` to ``path`` (any gfile path), creating parents."""
        parent = _gfile_dirname(path)
        if parent and not parent.endswith("://") and not tf.io.gfile.exists(parent):
            tf.io.gfile.makedirs(parent)
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(self.to_json())
        return path

    def __repr__(self):
        return "%s(%s)" % (
            type(self).__name__,
            ", ".join("%s=%r" % (k, getattr(self, k)) for k in self.hparam_names()),
        )


# ---------------------------------------------------------------------------
# Model sizes
# ---------------------------------------------------------------------------

# Keys and defaults of the reference's modeling.BertConfig, plus embedding_size
# (the reference keeps that one in the pre-training/fine-tuning config).
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

MODEL_SIZES_PACKAGE = "electra_tf.model_sizes"


def _model_sizes_dirs():
    """Directories that may hold bundled size files, in lookup order."""
    dirs = []
    try:
        dirs.append(importlib.resources.files(MODEL_SIZES_PACKAGE))
    except (ImportError, TypeError, ValueError, AttributeError):
        pass
    # Source checkout: <repo root>/model_sizes next to the electra_tf package.
    dirs.append(pathlib.Path(__file__).resolve().parent.parent / "model_sizes")
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
        or bool(_SCHEME_RE.match(model_size))
    )


def _validate_size_dict(d, source):
    if not isinstance(d, dict):
        raise ValueError("Model size %s must hold a JSON object" % source)
    allowed = set(ENCODER_KEYS) | set(_SIZE_FILE_EXTRA_KEYS)
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
            d = json.loads(_read_text(model_size))
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
