"""Distillation teachers: any BERT-like model we can read, as a `MobileBertForPreTraining`.

A plain BERT is a `MobileBertForPreTraining` with every MobileBERT option off, so the distiller
sees one kind of teacher whatever its source (`load_teacher`):
- an original TF1 checkpoint folder with `bert_config.json` (BERT, RoBERTa-wwm-ext, or a
  MobileBERT / IB-BERT), read by `conversion.mobilebert.load_checkpoint`;
- a Hugging Face folder: BERT or MobileBERT (`conversion.mobilebert.load_hf`), or ELECTRA
  (`conversion.huggingface`; the masked-LM head when the folder has a generator);
- one of our `run_pretraining.py` model directories (or a `ckpt-N` in it): the encoder and, for
  a masked LM (`electra_objective` false), its head.
ELECTRA-style encoders become plain BERTs by renaming (`from_transformer`), which needs
embedding_size == hidden_size: their projected embeddings (LayerNorm before the projection) have
no BERT equivalent.
"""

import dataclasses
import json
import posixpath
import re

import tensorflow as tf

from electra_tf import fileio
from electra_tf.conversion import huggingface, reference
from electra_tf.conversion import mobilebert as mobilebert_lib
from electra_tf.modeling.mobilebert import MobileBertConfig
from electra_tf.training import model_dir as model_dir_lib


@dataclasses.dataclass
class Teacher:
    """A loaded teacher: the model, whether its masked-LM head was read (not random), and what it
    was read from (for messages)."""

    model: object
    has_mlm_head: bool
    source: str


# Our TransformerEncoder's paths -> the plain-BERT MobileBertEncoder's (inside each encoder).
_ENCODER_RENAMES = (
    (r"^embeddings/layer_norm/", "embeddings/norm/"),
    (r"^(layer_\d+)/attention_layer_norm/", r"\1/attention_norm/"),
    (r"^(layer_\d+)/output_layer_norm/", r"\1/output_norm/"),
)


def _inside(layer, variable):
    marker = f"/{layer.name}/"
    full = f"/{variable.path}"
    return full.split(marker, 1)[1] if marker in full else None


def from_transformer(encoder, mlm_head=None, name="teacher", source="teacher"):
    """Our `TransformerEncoder` (+ its `MaskedLMHead`) -> a plain-BERT `MobileBertForPreTraining`
    with the same outputs (no pooler: `classifier_activation` off, as ELECTRA)."""
    c = encoder.config
    if c.embedding_size != c.hidden_size:
        raise ValueError(
            f"teacher {source}: embedding_size {c.embedding_size} != hidden_size {c.hidden_size}; "
            "an ELECTRA-style projected embedding has no BERT equivalent, so it cannot teach."
        )
    config = MobileBertConfig(**c.bert_values(), classifier_activation=False)
    model = mobilebert_lib.new_model(config, name)
    targets = {}
    for layer in (model.encoder, model.mlm_head):
        for v in layer.variables:
            inside = _inside(layer, v)
            if inside is not None and not reference.is_rng_state(v.path):
                targets[(layer is model.encoder, inside)] = v
    values = {}
    sources = [(encoder, True)] + ([(mlm_head, False)] if mlm_head is not None else [])
    for layer, is_encoder in sources:
        for v in layer.variables:
            inside = _inside(layer, v)
            if inside is None or reference.is_rng_state(v.path):
                continue
            if is_encoder:
                for pattern, replacement in _ENCODER_RENAMES:
                    inside = re.sub(pattern, replacement, inside)
            target = targets.get((is_encoder, inside))
            if target is None:
                raise ValueError(f"teacher {source}: no place for {v.path} in a BERT.")
            reference.check_shape(v.numpy(), tuple(target.shape), target.path, v.path, source)
            values[target.path] = v.numpy()
    missing = [
        t.path for (is_encoder, _), t in targets.items() if is_encoder and t.path not in values
    ]
    if missing:
        raise ValueError(f"teacher {source}: nothing to copy into {', '.join(missing[:3])}.")
    reference.assign_weights(model, values, source)
    return model


def _hf_model_type(folder):
    with tf.io.gfile.GFile(posixpath.join(folder, "config.json")) as f:
        try:
            return json.load(f).get("model_type")
        except json.JSONDecodeError as e:
            raise ValueError(f"{folder}/config.json is not valid JSON: {e}") from e


def _has_hf_head(folder):
    return any(name.startswith("cls.predictions.") for name in huggingface.read_state(folder))


def load_teacher(path, name="teacher"):
    """Reads the teacher at `path` (see the module docstring) -> `Teacher`.

    Raises FileNotFoundError when nothing is there and ValueError for a folder that holds no
    model we can read, each naming the path.
    """
    path = str(path).rstrip("/")
    if not (tf.io.gfile.exists(path) or tf.io.gfile.exists(path + ".index")):
        raise FileNotFoundError(f"teacher {path} does not exist.")
    folder = path if tf.io.gfile.isdir(path) else posixpath.dirname(path)
    if tf.io.gfile.exists(posixpath.join(folder, mobilebert_lib.BERT_CONFIG)):
        model, _ = mobilebert_lib.load_checkpoint(path, name=name)
        return Teacher(model, True, path)
    if model_dir_lib.read(folder, model_dir_lib.ENCODER_CONFIG) is not None:
        if model_dir_lib.read(folder, model_dir_lib.PRETRAIN_CONFIG) is None:
            raise ValueError(
                f"teacher {path}: {model_dir_lib.ENCODER_CONFIG} without "
                f"{model_dir_lib.PRETRAIN_CONFIG}; only run_pretraining.py model dirs can teach."
            )
        pretrained = reference.load_model_dir(path)
        head = None
        if pretrained.generator is pretrained.discriminator:  # a masked LM: its own head
            head = pretrained.generator_head
        model = from_transformer(pretrained.discriminator, head, name, path)
        return Teacher(model, head is not None, path)
    for candidate in (folder, posixpath.join(folder, "generator")):
        if tf.io.gfile.exists(posixpath.join(candidate, "config.json")):
            break
    else:
        raise ValueError(
            f"teacher {path} holds no model we can read: expected an original checkpoint with "
            f"{mobilebert_lib.BERT_CONFIG}, a run_pretraining.py model dir "
            f"({model_dir_lib.ENCODER_CONFIG}) or a Hugging Face folder (config.json)."
        )
    model_type = _hf_model_type(candidate)
    if model_type in ("bert", "mobilebert"):
        model, _ = mobilebert_lib.load_hf(candidate, name=name)
        return Teacher(model, _has_hf_head(candidate), path)
    if model_type == "electra":
        pretrained = huggingface.load_pretraining_model(folder)
        head = None
        if pretrained.generator is pretrained.discriminator:
            head = pretrained.generator_head
        model = from_transformer(pretrained.discriminator, head, name, path)
        return Teacher(model, head is not None, path)
    raise ValueError(
        f"teacher {fileio.join(candidate, 'config.json')}: model_type {model_type!r} is not "
        "bert, mobilebert or electra."
    )
