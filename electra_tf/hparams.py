"""Hyperparameter objects: `--hparams` parsing and the base class of both configs.

`load_hparams` turns the `--hparams` value (a JSON object string, a JSON file on any
`tf.io.gfile` filesystem, a dict or None) into a dict. `HParams` is the base of
`PretrainingConfig` and `FinetuningConfig`: `update` refuses unknown keys (naming the closest known
one) and values of the wrong type (naming the key and the expected type) before changing anything;
`to_dict` / `to_json` / `save_json` dump the configuration; the `check_*` helpers give both configs
the same validation messages.
"""

import copy
import difflib
import json
import pathlib

import tensorflow as tf

from electra_tf import fileio


def load_hparams(value):
    """Returns the hyperparameter dict described by `value`.

    Args:
      value: None or an empty string (no hyperparameters), a dict (copied), a JSON object string
        such as `'{"learning_rate": 1e-4}'`, or the path of a JSON file readable with
        `tf.io.gfile` (local, `gs://`, `ram://` ...).

    Raises:
      ValueError: the value is neither a JSON object nor an existing file, the JSON does not
        parse (the message names the file, line and column), or it does not hold an object.
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
            f"got {type(value).__name__}"
        )
    text = value.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"--hparams: invalid JSON at column {e.colno}: {e.msg} (quote keys and strings "
                'with ", e.g. \'{"learning_rate": 1e-4}\')'
            ) from None
        source = "--hparams"
    else:
        if not tf.io.gfile.exists(text):
            raise ValueError(
                f"hparams {value!r} is neither a JSON object (it must start with '{{') nor "
                "an existing file"
            )
        parsed = fileio.read_json(text)
        source = text
    if not isinstance(parsed, dict):
        raise ValueError(
            f"hparams from {source} must be a JSON object, got {type(parsed).__name__}"
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
    """Returns the candidate closest to `name` (difflib), or None."""
    candidates = sorted(candidates)
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in candidates}
        matches = [
            lowered[m]
            for m in difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
        ]
    return matches[0] if matches else None


def did_you_mean(name, candidates):
    """` (did you mean 'x'?)` for the closest candidate, or an empty string."""
    match = closest_match(str(name), candidates)
    return f" (did you mean {match!r}?)" if match else ""


def _jsonable(value):
    """Returns a JSON-serializable copy of `value` or raises TypeError."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _jsonable(value.item())
    raise TypeError(f"not JSON serializable: {value!r}")


def _type_name(default):
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, (list, tuple)):
        return "a list"
    return "an object"


def _coerce(value, default):
    """`value` converted to the type of `default`, or raises TypeError."""
    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)):
            return list(value)
    elif isinstance(default, dict):
        if isinstance(value, dict):
            return value
    else:
        return value
    raise TypeError(_type_name(default))


class HParams:
    """Base class for configuration objects holding hyperparameters.

    Every public instance attribute set in `__init__` is a hyperparameter (as in the reference,
    where `update` checks `self.__dict__`); attributes whose names start with `_` are private.
    The first `update` records the defaults: later values must have the default's type (an int
    where the default is an int, ...), or be null for the keys in `NULLABLE` and those whose
    default is null. Keys in `FIXED` (the names every path derives from) are set when the config
    is made; `update` refuses another value for them rather than leave the derived paths stale.
    """

    NULLABLE = ()
    FIXED = ()

    def hparam_names(self):
        """Sorted names of the hyperparameters `update` accepts."""
        return sorted(k for k in vars(self) if not k.startswith("_"))

    def update(self, kwargs):
        """Sets the hyperparameters in `kwargs`; checks every key and value before changing any.

        Raises:
          ValueError: an unknown key (naming the closest known one) or a value of the wrong type
            (naming the key, the expected type and the value given).
        """
        if kwargs is None:
            return self
        if not isinstance(kwargs, dict):
            raise ValueError(f"hparams must be a JSON object, got {type(kwargs).__name__}")
        if "_defaults" not in vars(self):
            self._defaults = {k: copy.deepcopy(getattr(self, k)) for k in self.hparam_names()}
        names = self.hparam_names()
        values = {}
        for key, value in kwargs.items():
            if key not in names:
                raise ValueError(
                    f"Unknown hparam {key!r}{did_you_mean(key, names)}. Known hparams of "
                    f"{type(self).__name__}: {', '.join(names)}"
                )
            if key in self.FIXED and key in vars(self) and value != getattr(self, key):
                raise ValueError(
                    f"hparam {key!r} is {json.dumps(value)} but the config was made for "
                    f"{json.dumps(getattr(self, key))}: every path derives from it, so pass it as "
                    f"--{key} (the command's flag), not in --hparams."
                )
            default = self._defaults.get(key)
            if value is None and (default is None or key in self.NULLABLE):
                values[key] = None
                continue
            try:
                values[key] = _coerce(value, default)
            except TypeError as e:
                raise ValueError(
                    f"hparam {key!r} must be {e}, got {json.dumps(value)} ({type(value).__name__})"
                ) from None
        for key, value in values.items():
            setattr(self, key, copy.deepcopy(value))
        return self

    def to_dict(self):
        """A JSON-serializable dict of the hyperparameters (values JSON cannot hold are skipped)."""
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
        """Writes `to_json()` to `path` (any gfile path) atomically; returns the path."""
        fileio.write_text_atomic(path, self.to_json())
        return path

    # ----- validation shared by both configs -----

    def check_choice(self, name, allowed):
        value = getattr(self, name)
        if value not in allowed:
            raise ValueError(
                f"hparam {name!r} must be one of {', '.join(map(repr, allowed))}, got {value!r}"
            )

    def check_positive(self, *names):
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"hparam {name!r} must be positive, got {value!r}")

    def check_encoder_overrides(self, encoder_keys):
        overrides = self.model_hparam_overrides
        for key in overrides:
            if key not in encoder_keys:
                raise ValueError(
                    f"Unknown key {key!r} in model_hparam_overrides"
                    f"{did_you_mean(key, encoder_keys)}. Allowed keys: {', '.join(encoder_keys)}"
                )

    def size_defaults(self, size, section, top_level_keys):
        """Config defaults a model-size dict supplies: its `top_level_keys` and its `section`
        ("pretraining" or "finetuning"), whose keys must be hparams of this config."""
        defaults = {k: size[k] for k in top_level_keys if k in size}
        names = self.hparam_names()
        for key in size.get(section, {}):
            if key not in names:
                raise ValueError(
                    f"Unknown hparam {key!r} in the {section!r} section of model size "
                    f"{self.model_size!r}{did_you_mean(key, names)}"
                )
        defaults.update(size.get(section, {}))
        return defaults

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.hparam_names())
        return f"{type(self).__name__}({args})"
