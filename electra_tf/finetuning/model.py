"""Fine-tuning models: a pre-trained encoder plus one task head (see `modeling.task_heads`).

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
        """Per-example losses [B] and the outputs predictions are read from.

        Outputs: classification "logits" [B, C] and "predictions" [B]; regression "predictions" [B]
        (in the scaled [0, 1] target space); tagging "predictions" [B, T]; span QA the head's.
        """
        encoded = self.encoder(_encoder_inputs(features), training=training)
        if self.kind == "span_qa":
            outputs = self.head(encoded["sequence_output"], features, training=training)
            return outputs.pop("losses"), outputs
        if self.kind == "tagging":
            logits = self.head(encoded["sequence_output"])
            losses = tf.reduce_sum(
                cross_entropy(logits, features["label_ids"]) * features["label_weights"], -1
            )
            return losses, {"predictions": tf.argmax(logits, -1, output_type=tf.int32)}
        logits = self.head(encoded["pooled_output"], training=training)
        if self.kind == "regression":
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


def build_finetuning_model(encoder_config, task, config=None):
    """The encoder of `encoder_config` and `task`'s head, with the span-QA settings of the
    `FinetuningConfig` `config` (defaults when None)."""
    name = f"task_specific_{task.name}"
    if task.kind == "classification":
        head = SentenceHead(len(task.label_list), name=name)
    elif task.kind == "regression":
        head = SentenceHead(1, name=name)
    elif task.kind == "tagging":
        head = TaggingHead(len(task.label_list), name=name)
    elif config is None:
        head = SpanQAHead(name=name)
    else:
        head = SpanQAHead(
            config.joint_prediction,
            config.beam_size,
            config.answerable_classifier,
            config.answerable_uses_start_logits,
            config.answerable_weight,
            name=name,
        )
    encoder = networks.build_encoder(encoder_config, name="electra")  # BERT/ELECTRA or MobileBERT
    return FinetuningModel(encoder, head, task.kind)
