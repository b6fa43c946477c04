"""Fine-tuned sentence classifiers and regressors out of this project: a SavedModel that reads raw
strings, and a Hugging Face `ElectraForSequenceClassification` folder.

SavedModel (`export_saved_model`): the signature "serving_default" takes `text_a` [B] string (and
`text_b` [B] string for a sentence-pair model) and returns "probabilities" [B, C] float32, "labels"
[B] string and "logits" [B, C] for classification, or "predictions" [B] float32 (in the task's
target range) for regression. Tokenization (`tokenization.GraphTokenizer`), `[CLS] a [SEP] b
[SEP]` assembly, truncation and padding run in the graph, so loading it needs only `tensorflow`
and `tensorflow_text` (for its ops). Truncation is the reference's rule (drop the last token of the
longer text until the pair fits) in closed form (`truncated_lengths`), so the features equal
`features.sentence_features`'s for any input length. A row whose `text_b` tokenizes to nothing is
featurized as a single text, as `sentence_features` does.

Hugging Face (`save_sequence_classifier`): our head is one dense layer on [CLS] (the reference's);
HF's `ElectraClassificationHead` is dense -> gelu -> out_proj. The export sets its dense to the
identity plus a per-feature shift `c` with `x + c >= 6` for every value the final LayerNorm can
output (|x_j| <= |gamma_j| sqrt(H) + |beta_j|), where gelu is the identity in float32 (erf rounds to
1), and folds `-W c` into out_proj's bias: the same logits up to float32 rounding of `x + c`
(about 3e-5 for a base-size head, c <= 60). Fine-tuning it further in HF trains a genuine
two-layer head from that starting point.

Both read a fine-tuned model directory (`load_finetuned_model`): run_finetuning.py's
`finetuning_models/<task>_model_<trial>` with its checkpoint, `encoder_config.json` and
`task_info.json` (kind, labels, target range, text pairs, max_seq_length, casing, vocabulary).
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from electra_tf import fileio, tokenization
from electra_tf.finetuning.model import FinetuningModel, build_finetuning_model
from electra_tf.finetuning.tasks import Task
from electra_tf.modeling import networks
from electra_tf.training import model_dir as model_dir_lib

# gelu(x) == x in float32 for x >= this (erf(x / sqrt(2)) rounds to 1).
_GELU_IDENTITY_FROM = 6.0
_SENTENCE_KINDS = ("classification", "regression")


def truncated_lengths(len_a, len_b, budget):
    """Lengths `features.truncate_pair` leaves for texts of `len_a`, `len_b` tokens, as tensors.

    Popping from the longer text (from b on ties) only shortens the longer one until both meet at
    ceil(budget / 2) for a and floor(budget / 2) for b.
    """
    half_down = budget // 2
    a_cut = tf.maximum(budget - len_b, budget - half_down)
    b_cut = tf.maximum(budget - len_a, half_down)
    fits = len_a + len_b <= budget
    new_a = tf.where(fits, len_a, tf.where(len_a > len_b, a_cut, budget - b_cut))
    new_b = tf.where(fits, len_b, tf.where(len_a > len_b, budget - a_cut, b_cut))
    return new_a, new_b


class SentenceServing(tf.Module):
    """Raw strings -> a fine-tuned sentence model's outputs, all in TF ops (see the module doc).

    Args:
      model: a built classification or regression `finetuning.model.FinetuningModel`.
      tokenizer: the `tokenization.FullTokenizer` it was fine-tuned with.
      max_seq_length: the fine-tuning max_seq_length.
      label_list: label strings in id order (classification).
      regression_range: (min, max) the predictions are scaled back to (regression), else [0, 1].
    """

    def __init__(self, model, tokenizer, max_seq_length, label_list=None, regression_range=None):
        super().__init__()
        if model.kind not in _SENTENCE_KINDS:
            raise ValueError(
                f"Only {_SENTENCE_KINDS} models read raw sentences; this one is {model.kind!r}."
            )
        if model.kind == "classification" and len(label_list or ()) != model.head.dense.units:
            raise ValueError(
                f"The model has {model.head.dense.units} labels; label_list is {label_list!r}."
            )
        if max_seq_length < 3:
            raise ValueError(
                f"max_seq_length {max_seq_length} leaves no room for [CLS] a [SEP] b [SEP]."
            )
        self.model = model
        self.tokenizer = tokenization.GraphTokenizer(tokenizer)
        self.max_seq_length = max_seq_length
        self._cls = tokenizer.vocab["[CLS]"]
        self._sep = tokenizer.vocab["[SEP]"]
        self._labels = (
            None if label_list is None else tf.constant([str(label) for label in label_list])
        )
        self._range = regression_range

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    def featurize(self, text_a, text_b):
        """`sentence_features`'s "input_ids", "input_mask", "segment_ids" [B, max_seq_length] int32;
        rows with an empty `text_b` are single texts."""
        a, b = self.tokenizer(text_a), self.tokenizer(text_b)
        has_b = b.row_lengths() > 0
        budget = tf.where(has_b, self.max_seq_length - 3, self.max_seq_length - 2)
        keep_a, keep_b = truncated_lengths(
            a.row_lengths(), b.row_lengths(), tf.cast(budget, tf.int64)
        )
        a = tf.RaggedTensor.from_tensor(a.to_tensor(), lengths=keep_a)
        b = tf.RaggedTensor.from_tensor(b.to_tensor(), lengths=keep_b)
        column = tf.ones([tf.size(text_a), 1], tf.int64)
        cls, sep = [tf.RaggedTensor.from_tensor(column * token) for token in (self._cls, self._sep)]
        sep_b = tf.RaggedTensor.from_tensor(column * self._sep, lengths=tf.cast(has_b, tf.int64))
        pieces = [cls, a, sep, b, sep_b]
        ids = tf.concat(pieces, axis=1)
        segments = tf.concat([p * 0 + int(i > 2) for i, p in enumerate(pieces)], axis=1)
        shape = [None, self.max_seq_length]
        return {
            "input_ids": tf.cast(ids.to_tensor(shape=shape), tf.int32),
            "input_mask": tf.cast(tf.ones_like(ids).to_tensor(shape=shape), tf.int32),
            "segment_ids": tf.cast(segments.to_tensor(shape=shape), tf.int32),
        }

    def outputs(self, text_a, text_b):
        """The signature's outputs for [B] strings (`text_b` "" for single texts)."""
        inputs = self.featurize(text_a, text_b)
        # Cut to the batch's longest row: padding cannot change the outputs and costs its width.
        width = tf.maximum(1, tf.reduce_max(tf.reduce_sum(inputs["input_mask"], -1)))
        inputs = {k: v[:, :width] for k, v in inputs.items()}
        encoded = self.model.encoder(inputs, training=False)
        logits = self.model.head(encoded["pooled_output"], training=False)
        if self.model.kind == "regression":
            predictions = tf.squeeze(logits, -1)
            if self._range is not None:
                low, high = self._range
                predictions = low + predictions * (high - low)
            return {"predictions": predictions}
        return {
            "logits": logits,
            "probabilities": tf.nn.softmax(logits),
            "labels": tf.gather(self._labels, tf.argmax(logits, -1)),
        }

    def signature(self, text_pairs):
        """The concrete function of "serving_default": (text_a, text_b) or (text_a)."""
        spec = tf.TensorSpec([None], tf.string)
        if text_pairs:
            serve = tf.function(lambda text_a, text_b: self.outputs(text_a, text_b))
            return serve.get_concrete_function(text_a=spec, text_b=spec)
        serve = tf.function(lambda text_a: self.outputs(text_a, tf.fill(tf.shape(text_a), "")))
        return serve.get_concrete_function(text_a=spec)


def export_saved_model(
    model,
    export_dir,
    vocab_file,
    max_seq_length,
    do_lower_case=True,
    label_list=None,
    regression_range=None,
    text_pairs=False,
):
    """Writes a SavedModel of `model` with the tokenizer in the graph; returns `export_dir`.

    Args as `SentenceServing`'s; `text_pairs` gives "serving_default" a `text_b` input. Use it with
    `tf.saved_model.load(export_dir).signatures["serving_default"](text_a=tf.constant([...]))`
    after `import tensorflow_text`.
    """
    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case)
    module = SentenceServing(model, tokenizer, max_seq_length, label_list, regression_range)
    tf.saved_model.save(
        module, export_dir, signatures={"serving_default": module.signature(text_pairs)}
    )
    return export_dir


def _identity_head(kernel, bias, gamma, beta):
    """Our dense head (kernel [H, C], bias [C]) on LayerNorm(gamma, beta) outputs -> HF's
    classifier.{dense,out_proj} tensors computing the same function (see the module doc)."""
    hidden = kernel.shape[0]
    shift = np.abs(gamma) * math.sqrt(hidden) + np.abs(beta) + _GELU_IDENTITY_FROM
    return {
        "classifier.dense.weight": np.eye(hidden, dtype=np.float32),
        "classifier.dense.bias": shift.astype(np.float32),
        "classifier.out_proj.weight": np.ascontiguousarray(kernel.T, np.float32),
        "classifier.out_proj.bias": (bias - shift.astype(np.float64) @ kernel).astype(np.float32),
    }


def save_sequence_classifier(model, output_dir, vocab_file, label_list=None, do_lower_case=True):
    """A classification or regression `FinetuningModel` -> an `ElectraForSequenceClassification`
    folder (config with num_labels/id2label, model.safetensors, tokenizer files); returns it.

    Regression exports one label with problem_type "regression"; its logit is our prediction in the
    scaled [0, 1] target space.
    """
    if model.kind not in _SENTENCE_KINDS:
        raise ValueError(
            f"ElectraForSequenceClassification holds {_SENTENCE_KINDS} models; this "
            f"one is {model.kind!r}."
        )
    num_labels = model.head.dense.units
    if model.kind == "classification":
        label_list = [str(label) for label in label_list or range(num_labels)]
        if len(label_list) != num_labels:
            raise ValueError(f"The model has {num_labels} labels; label_list is {label_list!r}.")
    else:
        label_list = ["LABEL_0"]
    # The Hugging Face side needs the `hf` extra (safetensors): imported only here.
    from electra_tf.conversion import huggingface  # pylint: disable=import-outside-toplevel

    encoder = model.encoder
    if isinstance(encoder.config, networks.MobileBertConfig):
        raise ValueError(
            "A fine-tuned MobileBERT exports to a SavedModel (--to saved_model); the Hugging Face "
            "sequence classifier export is ELECTRA's only."
        )
    last = f"{encoder.name}/layer_{encoder.config.num_hidden_layers - 1}/output_layer_norm/"
    values = {v.path: v.numpy() for v in encoder.variables}
    head = model.head.dense
    tensors = huggingface.tensors_of(encoder.variables, "electra.")
    tensors.update(
        _identity_head(
            head.kernel.numpy(), head.bias.numpy(), values[last + "gamma"], values[last + "beta"]
        )
    )
    config = huggingface.hf_config(encoder.config, "ElectraForSequenceClassification")
    config.update(
        num_labels=num_labels,
        id2label=dict(enumerate(label_list)),
        label2id={label: i for i, label in enumerate(label_list)},
    )
    if model.kind == "regression":
        config["problem_type"] = "regression"
    return huggingface.write_folder(output_dir, config, tensors, vocab_file, do_lower_case)


@dataclasses.dataclass
class FinetunedModel:
    """A fine-tuned sentence model restored from its directory, with what exporting it needs."""

    model: FinetuningModel
    info: dict  # task_info.json: task, kind, label_list, regression_range, text_pairs, ...
    vocab_file: str
    checkpoint: str

    def export_saved_model(self, export_dir):
        info = self.info
        return export_saved_model(
            self.model,
            export_dir,
            self.vocab_file,
            info["max_seq_length"],
            info["do_lower_case"],
            info["label_list"],
            info["regression_range"],
            info["text_pairs"],
        )

    def save_sequence_classifier(self, output_dir):
        return save_sequence_classifier(
            self.model,
            output_dir,
            self.vocab_file,
            self.info["label_list"],
            self.info["do_lower_case"],
        )


def is_finetuned_model_dir(path):
    """Whether `path` (a folder or a `ckpt-N` prefix in one) is a run_finetuning.py model dir."""
    return model_dir_lib.describe(path)[model_dir_lib.TASK_INFO] is not None


def _one_task(info, folder, task):
    """The task_info of `task` (of a jointly trained model's tasks; any name for a single task)."""
    tasks = info.get("tasks")
    if tasks is None:
        if task not in (None, info["task"]):
            raise ValueError(f"{folder} holds a model for task {info['task']!r}, not {task!r}.")
        return info
    if task not in tasks:
        raise ValueError(
            f"{folder} holds a model trained jointly on {', '.join(tasks)}: pass --task with one "
            "of them to export that task's head."
        )
    return tasks[task]


def load_finetuned_model(path, vocab_file=None, task=None):
    """A run_finetuning.py model dir (or one `ckpt-N` in it) -> `FinetunedModel`.

    The vocabulary is `vocab_file`, else the one the model was fine-tuned with (task_info.json).
    A jointly trained model (several tasks) exports one task at a time: `task` names it.
    """
    folder = model_dir_lib.checkpoint_dir(path)
    files = model_dir_lib.describe(path)
    for name in (model_dir_lib.ENCODER_CONFIG, model_dir_lib.TASK_INFO):
        if files[name] is None:
            raise FileNotFoundError(
                f"{fileio.join(folder, name)} not found: {folder} is not a model "
                "dir written by run_finetuning.py "
                "(finetuning_models/<task>_model_<trial>)."
            )
    info = _one_task(files[model_dir_lib.TASK_INFO], folder, task)
    if info["kind"] not in _SENTENCE_KINDS:
        raise ValueError(
            f"{folder} holds a {info['kind']} model for task {info['task']!r}; only "
            f"{' and '.join(_SENTENCE_KINDS)} models export (SavedModel serving, "
            "ElectraForSequenceClassification)."
        )
    vocab_file = vocab_file or info["vocab_file"]
    if not tf.io.gfile.exists(vocab_file):
        raise FileNotFoundError(
            f"Vocabulary {vocab_file} (from {folder}/{model_dir_lib.TASK_INFO}) not found: pass --vocab_file."
        )
    task = Task(
        info["task"],
        info["kind"],
        "tsv",
        {},
        (),
        labels=info["label_list"],
        regression_range=info["regression_range"],
    )
    encoder_config = networks.encoder_config_from_dict(files[model_dir_lib.ENCODER_CONFIG])
    model = build_finetuning_model(encoder_config, task)
    model.build_all(info["max_seq_length"])
    checkpoint = model_dir_lib.restore_variables(model.trainable_variables, path, "--input")
    return FinetunedModel(model, info, vocab_file, checkpoint)
