"""Hugging Face `transformers` folders <-> this project's models, with numpy and safetensors.

Out: the discriminator -> `ElectraForPreTraining`, the generator -> `ElectraForMaskedLM`, an
encoder -> `ElectraModel`; each folder holds config.json, model.safetensors, vocab.txt,
tokenizer_config.json and special_tokens_map.json, so `from_pretrained(folder)` loads it.
In: ELECTRA folders (those, a folder holding discriminator/ and generator/, or the hub's
google/electra-*) and BERT encoders (`BertModel`, or the `bert.` encoder of a BERT task model;
BERT's pooler and heads are dropped). torch is imported only to read a legacy pytorch_model.bin.

HF `Linear` weights are [out, in], our kernels [in, out] (attention kernels split by head), so
kernels are transposed on the way; names follow `hf_name`.
"""

import json
import posixpath
import re

import numpy as np
import tensorflow as tf
from absl import logging
from safetensors import numpy as safetensors_numpy

from electra_tf import tokenization
from electra_tf.conversion import reference
from electra_tf.modeling import EncoderConfig, TransformerEncoder

SPECIAL_TOKENS = {
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}
# Encoder keys a PretrainingConfig rebuilds exactly: --hparams may not contradict them.
_STRICT_KEYS = (
    "vocab_size",
    "embedding_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "max_position_embeddings",
    "type_vocab_size",
)
# Keys that only matter to training: --hparams may change them.
_SOFT_KEYS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range")
# HF names are the reference's TF1 names (`reference.reference_name`) in dotted form, leaves renamed.
_HF_LEAVES = {"kernel": "weight", "gamma": "weight", "beta": "bias", "bias": "bias"}
_HEADS = ("discriminator_predictions", "generator_predictions")


# ----- names and layouts --------------------------------------------------------------------------


def hf_name(path, prefix=""):
    """HF parameter name of our variable `path`; encoder weights get `prefix` ("electra." ...).

    The reference's TF1 name with dots for slashes (`encoder/layer_0/...` ->
    `encoder.layer.0...`), as transformers' own TF-checkpoint loader reads it.
    """
    scope, _, local = path.partition("/")
    if scope in _HEADS:
        local, prefix = path, ""
    local = re.sub(r"^generator_embeddings/", "embeddings/", local)
    name = reference.reference_name("/" + local).lstrip("/")
    name = re.sub(r"layer_(\d+)", r"layer.\1", name).replace("/", ".")
    name = name.replace(".dense_1.", ".dense_prediction.")  # HF kept the layer's own name
    head, _, leaf = name.rpartition(".")
    if leaf in _HF_LEAVES:
        return prefix + f"{head}.{_HF_LEAVES[leaf]}"
    if leaf.endswith("_embeddings"):
        return prefix + name + ".weight"
    if name == "generator_predictions.output_bias":
        return "generator_lm_head.bias"
    raise ValueError(f"No Hugging Face name for variable {path}.")


def to_hf(path, value):
    """Our array -> the HF tensor: BERT's dense layout, kernels transposed to [out, in]."""
    value = reference.to_dense_layout(path, value)
    return value.T if path.endswith("kernel") else value


def from_hf(path, value, shape, name, source):
    """An HF tensor -> our variable `path` of `shape` (shape errors name both sides)."""
    reference.check_shape(value, to_hf(path, np.empty(shape, np.float32)).shape, path, name, source)
    return np.reshape(np.asarray(value.T if path.endswith("kernel") else value, np.float32), shape)


def tensors_of(variables, prefix=""):
    tensors = {}
    for variable in variables:
        if not reference.is_rng_state(variable.path):
            tensors[hf_name(variable.path, prefix)] = np.ascontiguousarray(
                to_hf(variable.path, variable.numpy())
            )
    return tensors


def _head_variables(head):
    # A head also tracks the shared embeddings it is tied to: keep its own weights only.
    return [v for v in head.variables if v.path.startswith(head.name + "/")]


# ----- writing ------------------------------------------------------------------------------------


def hf_config(encoder_config, architecture):
    # EncoderConfig's fields are ElectraConfig's.
    return dict(
        encoder_config.to_dict(),
        architectures=[architecture],
        model_type="electra",
        position_embedding_type="absolute",
    )


def write_folder(
    output_dir, config, tensors, vocab_file, do_lower_case, tokenizer_class="ElectraTokenizer"
):
    """config.json, model.safetensors and the tokenizer files of one HF model."""
    vocab = tokenization.load_vocab(vocab_file)
    if len(vocab) > config["vocab_size"]:
        raise ValueError(
            f"{vocab_file} has {len(vocab)} tokens but the model only "
            f"{config['vocab_size']} embeddings."
        )
    missing = [t for t in SPECIAL_TOKENS.values() if t not in vocab]
    if missing:
        logging.warning("%s lacks %s: the HF tokenizer will not know them.", vocab_file, missing)
    tf.io.gfile.makedirs(output_dir)
    config = dict(config, pad_token_id=vocab.get("[PAD]", 0))
    tokenizer_config = dict(
        SPECIAL_TOKENS,
        do_lower_case=do_lower_case,
        strip_accents=None,
        tokenize_chinese_chars=True,
        tokenizer_class=tokenizer_class,
        model_max_length=config["max_position_embeddings"],
    )
    for name, content in (
        ("config.json", config),
        ("tokenizer_config.json", tokenizer_config),
        ("special_tokens_map.json", SPECIAL_TOKENS),
    ):
        with tf.io.gfile.GFile(posixpath.join(output_dir, name), "w") as f:
            f.write(json.dumps(content, indent=2, sort_keys=True) + "\n")
    tf.io.gfile.copy(vocab_file, posixpath.join(output_dir, "vocab.txt"), overwrite=True)
    with tf.io.gfile.GFile(posixpath.join(output_dir, "model.safetensors"), "wb") as f:
        f.write(safetensors_numpy.save(tensors, metadata={"format": "pt"}))
    return output_dir


def save_encoder(encoder, output_dir, vocab_file, do_lower_case=True):
    """A `TransformerEncoder` -> an `ElectraModel` folder."""
    config = hf_config(encoder.config, "ElectraModel")
    return write_folder(
        output_dir, config, tensors_of(encoder.variables), vocab_file, do_lower_case
    )


def save_discriminator(model, output_dir, vocab_file):
    """A `PretrainingModel`'s discriminator and its head -> an `ElectraForPreTraining` folder."""
    if model.discriminator_head is None:
        raise ValueError("This model has no discriminator head (electra_objective is off).")
    config = hf_config(model.discriminator.config, "ElectraForPreTraining")
    tensors = tensors_of(model.discriminator.variables, "electra.")
    tensors.update(tensors_of(_head_variables(model.discriminator_head)))
    return write_folder(
        output_dir, config, tensors, vocab_file, model.pretrain_config.do_lower_case
    )


def save_generator(model, output_dir, vocab_file):
    """A `PretrainingModel`'s generator (or masked LM) and its head -> `ElectraForMaskedLM`."""
    if model.generator_head is None:
        raise ValueError("This model has no generator (uniform_generator is on).")
    if model.generator.config.hidden_act != "gelu":
        raise ValueError(
            f"ElectraForMaskedLM's generator head always applies gelu; this model's "
            f"uses {model.generator.config.hidden_act!r}."
        )
    config = hf_config(model.generator.config, "ElectraForMaskedLM")
    tensors = tensors_of(model.generator.variables, "electra.")
    tensors.update(tensors_of(_head_variables(model.generator_head)))
    tensors["generator_lm_head.weight"] = tensors["electra.embeddings.word_embeddings.weight"]
    return write_folder(
        output_dir, config, tensors, vocab_file, model.pretrain_config.do_lower_case
    )


def save_pretraining_model(model, output_dir, vocab_file):
    """OUTPUT/discriminator and OUTPUT/generator, for the networks `model` has; returns them."""
    written = []
    if model.discriminator_head is not None:
        written.append(
            save_discriminator(model, posixpath.join(output_dir, "discriminator"), vocab_file)
        )
    if model.generator_head is not None:
        written.append(save_generator(model, posixpath.join(output_dir, "generator"), vocab_file))
    return written


# ----- reading ------------------------------------------------------------------------------------


def read_state(folder):
    """{name: numpy array} of an HF folder: model.safetensors (sharded too), else
    pytorch_model.bin (needs torch)."""
    single, index, legacy = (
        posixpath.join(folder, name)
        for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
    )
    if tf.io.gfile.exists(single):
        files = [single]
    elif tf.io.gfile.exists(index):
        with tf.io.gfile.GFile(index) as f:
            files = [
                posixpath.join(folder, name)
                for name in sorted(set(json.load(f)["weight_map"].values()))
            ]
    elif tf.io.gfile.exists(legacy):
        import torch  # pylint: disable=import-outside-toplevel

        state = torch.load(legacy, map_location="cpu", weights_only=True)
        return {k: (v.float() if v.is_floating_point() else v).numpy() for k, v in state.items()}
    else:
        raise FileNotFoundError(
            f"{folder} has no model.safetensors(.index.json) or pytorch_model.bin."
        )
    state = {}
    for path in files:
        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
        try:
            state.update(safetensors_numpy.load(data))
        except Exception as e:  # safetensors raises its own error types
            raise ValueError(
                f"{path} is not a readable safetensors file ({e}); it may be truncated: "
                "download or write it again."
            ) from None
    return state


def read_config_json(folder, model_types):
    """(path, values) of the config.json of an HF folder whose `model_type` is one of
    `model_types`, with absolute position embeddings (the only kind our encoders have)."""
    path = posixpath.join(folder, "config.json")
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} not found: not a Hugging Face model folder.")
    with tf.io.gfile.GFile(path) as f:
        values = json.load(f)
    if values.get("model_type") not in model_types:
        expected = " or ".join(repr(t) for t in model_types)
        raise ValueError(f"{path}: model_type {values.get('model_type')!r} is not {expected}.")
    if values.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{path}: only absolute position embeddings are supported.")
    return path, values


def read_config(folder):
    """config.json of an HF BERT or ELECTRA folder, with `embedding_size` filled in."""
    _, config = read_config_json(folder, ("electra", "bert"))
    config.setdefault("embedding_size", config["hidden_size"])
    return config


def encoder_prefix(state, source):
    """The prefix of the encoder's names in `state`: "electra.", "bert." or ""."""
    for prefix in ("electra.", "bert.", ""):
        if prefix + "embeddings.word_embeddings.weight" in state:
            return prefix
    raise ValueError(
        f"{source} has no embeddings.word_embeddings.weight: not a BERT/ELECTRA encoder."
    )


def _lookup(state, prefix, source):
    def lookup(path, shape):
        name = hf_name(path, prefix)
        if name not in state:
            return name, None
        return name, from_hf(path, state[name], shape, name, source)

    return lookup


def _read_folders(path):
    """{"discriminator"/"generator": (folder, config, state)} for `path`: its subfolders, or `path`
    itself (a generator when it has an ELECTRA MLM head)."""
    folders = {
        role: posixpath.join(path, role)
        for role in ("discriminator", "generator")
        if tf.io.gfile.exists(posixpath.join(path, role, "config.json"))
    }
    if not folders:
        folders = {"discriminator": path}
    read = {
        role: (folder, read_config(folder), read_state(folder)) for role, folder in folders.items()
    }
    if list(read) == ["discriminator"] and "generator_lm_head.bias" in read["discriminator"][2]:
        read = {"generator": read["discriminator"]}
    return read


def folder_vocab(path):
    """The vocab.txt of an HF folder (or of its discriminator/ or generator/), or None."""
    for folder in (path, posixpath.join(path, "discriminator"), posixpath.join(path, "generator")):
        if tf.io.gfile.exists(posixpath.join(folder, "vocab.txt")):
            return posixpath.join(folder, "vocab.txt")
    return None


def load_encoder(path):
    """An HF BERT/ELECTRA encoder (the discriminator's, for a folder holding discriminator/) ->
    a built `TransformerEncoder` named "electra"."""
    folders = _read_folders(path)
    folder, config, state = folders.get("discriminator") or folders["generator"]
    fields = set(EncoderConfig.__dataclass_fields__)
    encoder = TransformerEncoder(
        EncoderConfig(**{k: v for k, v in config.items() if k in fields}), name="electra"
    )
    encoder.build()
    lookup = _lookup(state, encoder_prefix(state, folder), folder)
    reference.assign_weights(
        encoder, reference.collect_weights(encoder, ("electra",), lookup, folder), folder
    )
    return encoder


def _sizes(config, keys, folder):
    return {k: (config[k], f"{folder}/config.json") for k in keys if k in config}


def _encoder_arrays(state, prefix):
    return {
        k[len(prefix) :]: v
        for k, v in state.items()
        if k.startswith(prefix) and k[len(prefix) :].startswith(("embeddings.", "encoder."))
    }


def _structure(folders):
    """Hparams implied by which networks the folders hold, and the generator's sizes when it is a
    separate network."""
    if "discriminator" not in folders:
        return {"electra_objective": False}, None
    if "generator" not in folders:
        return {}, None
    (_, _, disc_state), (gen_folder, gen_config, gen_state) = (
        folders["discriminator"],
        folders["generator"],
    )
    disc = _encoder_arrays(disc_state, encoder_prefix(disc_state, "discriminator"))
    gen = _encoder_arrays(gen_state, encoder_prefix(gen_state, gen_folder))
    same = {k for k in disc if k in gen and np.array_equal(disc[k], gen[k])}
    if len(same) == len(disc) == len(gen):
        return {"untied_generator": False}, None
    shared_embeddings = all(k in same for k in disc if k.startswith("embeddings."))
    return (
        {"untied_generator_embeddings": not shared_embeddings},
        _sizes(gen_config, _STRICT_KEYS, gen_folder),
    )


def load_pretraining_model(path, hparams=None, vocab_file=None):
    """HF folders -> `PretrainingModel`.

    `path` holds discriminator/ and/or generator/ (as `save_pretraining_model` writes them) or is
    one model folder. A generator alone makes a masked LM (electra_objective off); a discriminator
    or a bare encoder gets the networks and heads its folder lacks initialized at random. A
    generator whose encoder equals the discriminator's becomes a tied one (untied_generator off);
    one with its own embeddings gets untied_generator_embeddings. `hparams` as for
    `reference.pretraining_config`; do_lower_case defaults to the folder's tokenizer_config.json;
    `vocab_file` gives the model its [MASK] id (see `reference.new_model`).
    """
    folders = _read_folders(path)
    main_role = "discriminator" if "discriminator" in folders else "generator"
    folder, main, _ = folders[main_role]
    if main.get("layer_norm_eps", 1e-12) != 1e-12:
        raise ValueError(
            f"{folder}: layer_norm_eps {main['layer_norm_eps']} cannot be set in a "
            "PretrainingConfig (always 1e-12); use load_encoder()."
        )
    structure, generator = _structure(folders)
    tokenizer_config = posixpath.join(folder, "tokenizer_config.json")
    if tf.io.gfile.exists(tokenizer_config):
        with tf.io.gfile.GFile(tokenizer_config) as f:
            structure["do_lower_case"] = json.load(f).get("do_lower_case", True)
    config = reference.pretraining_config(
        _sizes(main, _STRICT_KEYS, folder),
        hparams,
        generator=generator,
        defaults={k: main[k] for k in _SOFT_KEYS if k in main},
        source=folder,
        **structure,
    )
    model = reference.new_model(config, vocab_file)
    # Each scope of our model -> the folder that holds it, when one does.
    sources = {"electra": main_role}
    if "discriminator_predictions.dense.weight" in folders.get("discriminator", ("", {}, {}))[2]:
        sources["discriminator_predictions"] = "discriminator"
    if "generator" in folders:
        sources["generator_predictions"] = "generator"
        if model.generator is not model.discriminator:
            sources["generator"] = "generator"
    values = {}
    for scope, role in sources.items():
        folder, _, state = folders[role]
        lookup = _lookup(state, encoder_prefix(state, folder), folder)
        values.update(reference.collect_weights(model, (scope,), lookup, folder))
    reference.assign_weights(model, values, path)
    return model
