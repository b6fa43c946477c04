"""Fine-tuning models: a pre-trained encoder plus one task head (see `modeling.task_heads`), or
plus one head per task for joint multi-task training (`MultiTaskModel`).

Losses per example, as the reference's task modules: classification cross-entropy on the [CLS]
head; regression squared error against the scaled target; tagging cross-entropy summed over the
words' first sub-tokens; span QA the head's (start + end) / 2 (+ answerable loss).

The encoder is the layer "electra" and is built before anything else, so its variables are named
as in the pre-training checkpoint (`electra/layer_0/...`); heads are named
`task_specific_<task>`, outside the layer-wise decay patterns, so they get the full learning rate.
"""

import keras
import tensorflow as tf

from electra_tf.modeling import networks
from electra_tf.modeling.task_heads import SentenceHead, SpanQAHead, TaggingHead, cross_entropy

KINDS = ("classification", "regression", "tagging", "span_qa")


@keras.saving.register_keras_serializable(package="electra_tf")
class FinetuningModel(keras.Model):
    """An encoder and the head of one task.

    Args:
      encoder: the encoder network, named "electra" (see `build_finetuning_model`).
      head: the task head (`modeling.task_heads`) matching `kind`.
      kind: one of `KINDS`.
    """

    def __init__(self, encoder, head, kind, **kwargs):
        kwargs.setdefault("name", "finetuning_model")
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"Unknown task kind {kind!r}; expected one of {', '.join(KINDS)}")
        self.encoder = encoder
        self.head = head
        self.kind = kind

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "head": keras.saving.serialize_keras_object(self.head),
            "kind": self.kind,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"))
        head = keras.saving.deserialize_keras_object(config.pop("head"))
        for key in ("trainable", "dtype"):
            config.pop(key, None)
        return cls(encoder, head, **config)

    def build_all(self, max_seq_length, batch_size=2):
        """Creates every variable, the encoder's first so that they are named `electra/...`."""
        features = dummy_features(self.kind, batch_size, max_seq_length)
        self.encoder(_encoder_inputs(features))
        self.compute(features, training=False)

    def compute(self, features, training):
        """Per-example losses [B] and the outputs predictions are read from (see `head_outputs`)."""
        encoded = self.encoder(_encoder_inputs(features), training=training)
        return head_outputs(self.kind, self.head, encoded, features, training)


@keras.saving.register_keras_serializable(package="electra_tf")
class MultiTaskModel(keras.Model):
    """One encoder and one head per task, trained on batches that mix the tasks' examples (the
    reference's joint fine-tuning of every task in `task_names`).

    Features: the encoder inputs, "task_id" [B] (the row's task, its index in `task_names`) and
    each task's label arrays under `<task>/<key>` (zeros in other tasks' rows). An example's loss
    is its own task's head's loss, as the reference's one-hot selection.

    Args:
      encoder: the encoder network, named "electra".
      heads: one task head per task, in `task_names` order.
      kinds: the tasks' kinds (`KINDS`), in the same order.
      task_names: the tasks' names.

    Example:
    >>> from electra_tf.modeling import task_heads
    >>> from electra_tf.modeling.config import EncoderConfig
    >>> encoder = networks.build_encoder(EncoderConfig(vocab_size=50, hidden_size=8,
    ...     num_hidden_layers=1, num_attention_heads=2, intermediate_size=16), name="electra")
    >>> model = MultiTaskModel(encoder, [task_heads.SentenceHead(2), task_heads.SentenceHead(1)],
    ...     ["classification", "regression"], ["a", "b"])
    >>> model.build_all(8)
    >>> model.compute(model.dummy_features(2, 8), training=False)[0].shape
    TensorShape([2])
    """

    def __init__(self, encoder, heads, kinds, task_names, **kwargs):
        kwargs.setdefault("name", "finetuning_model")
        super().__init__(**kwargs)
        if not len(heads) == len(kinds) == len(task_names):
            raise ValueError("MultiTaskModel needs one head and one kind per task name")
        for kind in kinds:
            if kind not in KINDS:
                raise ValueError(f"Unknown task kind {kind!r}; expected one of {', '.join(KINDS)}")
        self.encoder = encoder
        self.heads = list(heads)
        self.kinds = list(kinds)
        self.task_names = list(task_names)

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "heads": [keras.saving.serialize_keras_object(h) for h in self.heads],
            "kinds": self.kinds,
            "task_names": self.task_names,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"))
        heads = [keras.saving.deserialize_keras_object(h) for h in config.pop("heads")]
        for key in ("trainable", "dtype"):
            config.pop(key, None)
        return cls(encoder, heads, **config)

    def dummy_features(self, batch_size, max_seq_length):
        """Zero-valued joint features of the right shapes and dtypes."""
        features = dummy_features("classification", batch_size, max_seq_length)
        features.pop("label_ids")
        features["task_id"] = tf.zeros([batch_size], tf.int32)
        for name, kind in zip(self.task_names, self.kinds):
            for key, value in dummy_features(kind, batch_size, max_seq_length).items():
                if key in label_keys(kind):
                    features[f"{name}/{key}"] = value
        return features

    def build_all(self, max_seq_length, batch_size=2):
        """Creates every variable, the encoder's first so that they are named `electra/...`."""
        features = self.dummy_features(batch_size, max_seq_length)
        self.encoder(_encoder_inputs(features))
        self.compute(features, training=False)

    def compute(self, features, training):
        """Per-example losses [B] (each row's own task's loss) and no outputs."""
        encoded = self.encoder(_encoder_inputs(features), training=training)
        losses = 0.0
        for index, (name, kind, head) in enumerate(zip(self.task_names, self.kinds, self.heads)):
            task_features = dict(_encoder_inputs(features))
            task_features.update({k: features[f"{name}/{k}"] for k in label_keys(kind)})
            task_losses, _ = head_outputs(kind, head, encoded, task_features, training)
            losses += task_losses * tf.cast(tf.equal(features["task_id"], index), tf.float32)
        return losses, {}

    def for_task(self, name):
        """The model as one task sees it: a `FinetuningModel` over the shared encoder and that
        task's head (no new variables), computing on the task's plain (un-prefixed) features."""
        index = self.task_names.index(name)
        return FinetuningModel(self.encoder, self.heads[index], self.kinds[index])


def head_outputs(kind, head, encoded, features, training):
    """A task head's per-example losses [B] and outputs on the encoder's outputs.

    Outputs: classification "logits" [B, C] and "predictions" [B]; regression "predictions" [B]
    (in the scaled [0, 1] target space); tagging "predictions" [B, T]; span QA the head's.
    """
    if kind == "span_qa":
        outputs = head(encoded["sequence_output"], features, training=training)
        return outputs.pop("losses"), outputs
    if kind == "tagging":
        logits = head(encoded["sequence_output"])
        losses = tf.reduce_sum(
            cross_entropy(logits, features["label_ids"]) * features["label_weights"], -1
        )
        return losses, {"predictions": tf.argmax(logits, -1, output_type=tf.int32)}
    logits = head(encoded["pooled_output"], training=training)
    if kind == "regression":
        predictions = tf.squeeze(logits, -1)
        return tf.square(predictions - features["targets"]), {"predictions": predictions}
    return cross_entropy(logits, features["label_ids"]), {
        "logits": logits,
        "predictions": tf.argmax(logits, -1, output_type=tf.int32),
    }


def label_keys(kind):
    """The feature arrays a task kind's loss reads besides the encoder inputs."""
    return {
        "classification": ("label_ids",),
        "regression": ("targets",),
        "tagging": ("label_ids", "label_weights"),
        "span_qa": ("start_positions", "end_positions", "is_impossible"),
    }[kind]


def dummy_features(kind, batch_size, max_seq_length):
    """Zero-valued features of the right shapes and dtypes (for building the model)."""
    shape = [batch_size, max_seq_length]
    features = {
        "input_ids": tf.zeros(shape, tf.int32),
        "input_mask": tf.ones(shape, tf.int32),
        "segment_ids": tf.zeros(shape, tf.int32),
    }
    for key in label_keys(kind):
        dtype = tf.float32 if key in ("targets", "label_weights") else tf.int32
        features[key] = tf.zeros(shape if kind == "tagging" else shape[:1], dtype)
    return features


def _encoder_inputs(features):
    return {k: features[k] for k in ("input_ids", "input_mask", "segment_ids")}


def task_head(task, config=None):
    """`task`'s head, named `task_specific_<task>`, with the span-QA settings of the
    `FinetuningConfig` `config` (defaults when None)."""
    name = f"task_specific_{task.name}"
    if task.kind == "classification":
        return SentenceHead(len(task.label_list), name=name)
    if task.kind == "regression":
        return SentenceHead(1, name=name)
    if task.kind == "tagging":
        return TaggingHead(len(task.label_list), name=name)
    if config is None:
        return SpanQAHead(name=name)
    return SpanQAHead(
        config.joint_prediction,
        config.beam_size,
        config.answerable_classifier,
        config.answerable_uses_start_logits,
        config.answerable_weight,
        name=name,
    )


def build_finetuning_model(encoder_config, task, config=None):
    """The encoder of `encoder_config` and `task`'s head (see `task_head`)."""
    head = task_head(task, config)  # created first: the seeded layers' draws depend on the order
    encoder = networks.build_encoder(encoder_config, name="electra")  # BERT/ELECTRA or MobileBERT
    return FinetuningModel(encoder, head, task.kind)


def build_multitask_model(encoder_config, tasks, config=None):
    """One encoder of `encoder_config` and a head per task (see `task_head`)."""
    heads = [task_head(task, config) for task in tasks]
    encoder = networks.build_encoder(encoder_config, name="electra")
    return MultiTaskModel(
        encoder,
        heads,
        [task.kind for task in tasks],
        [task.name for task in tasks],
    )
