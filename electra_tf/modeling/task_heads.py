"""Fine-tuning task heads, as the reference's task modules (google-research/electra `finetune/`).

* `SentenceHead`: dropout 0.1 on the [CLS] output, then a dense layer (classification: one
  output per label; regression: one value);
* `TaggingHead`: a dense layer per token;
* `SpanQAHead`: start and end logits restricted to the context and [CLS], (start + end loss) / 2;
  optionally end logits conditioned on the start (`joint_prediction`: the gold start in training,
  a beam of the best starts at prediction) and an answerable classifier (sigmoid loss on
  `is_impossible`, weighted by `answerable_weight`).

Example:

>>> import tensorflow as tf
>>> head = SentenceHead(3)
>>> head(tf.zeros([2, 16])).shape
TensorShape([2, 3])
"""

import keras
import tensorflow as tf

from electra_tf.modeling.base import ConfigLayer
from electra_tf.modeling.dropout import Dropout
from electra_tf.modeling.transformer import get_activation

# Added to the logits of positions that cannot start or end an answer (the reference's value).
_OUTSIDE = 1000.0
# Width of the joint end predictor's and the answerable classifier's hidden layer (reference).
_QA_HIDDEN = 512
# The reference's dropout on the [CLS] output (keep_prob 0.9).
_HEAD_DROPOUT = 0.1


@keras.saving.register_keras_serializable(package="electra_tf")
class SentenceHead(ConfigLayer):
    """Dropout then a dense layer on the [CLS] output: [B, H] -> float32 [B, outputs]."""

    def __init__(self, num_outputs, **kwargs):
        super().__init__(**kwargs)
        self.remember(locals())
        self.dropout = Dropout(_HEAD_DROPOUT, dtype=self.dtype_policy, name="dropout")
        self.dense = keras.layers.Dense(num_outputs, dtype=self.dtype_policy, name="dense")

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.built = True

    def call(self, pooled, training=None):
        return tf.cast(self.dense(self.dropout(pooled, training=training)), tf.float32)


@keras.saving.register_keras_serializable(package="electra_tf")
class TaggingHead(ConfigLayer):
    """A dense layer per token (no dropout, as the reference): [B, T, H] -> float32 [B, T, C]."""

    def __init__(self, num_labels, **kwargs):
        super().__init__(**kwargs)
        self.remember(locals())
        self.dense = keras.layers.Dense(num_labels, dtype=self.dtype_policy, name="dense")

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.built = True

    def call(self, sequence):
        return tf.cast(self.dense(sequence), tf.float32)


@keras.saving.register_keras_serializable(package="electra_tf")
class SpanQAHead(ConfigLayer):
    """Start/end logits over [CLS] and the context, optionally joint and with a no-answer logit.

    `call(sequence [B, T, H], features, training)` returns float32 "start_logits", "end_logits"
    [B, T] (the end ones are zeros at prediction in joint mode, as the reference), "losses" [B],
    "answerable_logit" [B] with the classifier, and in joint mode at prediction
    "start_top_log_probs"/"start_top_index" [B, K] and "end_top_log_probs"/"end_top_index"
    [B, K, K] with K = min(beam_size, T). The joint layer's dense over concat(start, end) is
    applied as two matmuls and a broadcast sum, so the beam does not materialise [B, K, T, 2H].
    """

    def __init__(
        self,
        joint_prediction=True,
        beam_size=20,
        answerable_classifier=True,
        answerable_uses_start_logits=True,
        answerable_weight=0.5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.remember(locals())

        def dense(units, name, activation=None):
            return keras.layers.Dense(
                units, activation=activation, dtype=self.dtype_policy, name=name
            )

        gelu = get_activation("gelu")
        self.start_dense = dense(1, "start_logits")
        if joint_prediction:
            self.qa_hidden = dense(_QA_HIDDEN, "qa_hidden")
            self.end_dense = dense(1, "qa_logits")
        else:
            self.end_dense = dense(1, "end_logits")
        if answerable_classifier:
            self.answerable_hidden = (
                dense(_QA_HIDDEN, "answerable_hidden", gelu)
                if answerable_uses_start_logits
                else None
            )
            self.answerable_dense = dense(1, "answerable_logit")

    def build(self, input_shape):
        hidden = input_shape[-1]
        self.start_dense.build((None, hidden))
        if self.joint_prediction:
            self.qa_hidden.build((None, 2 * hidden))
            self.end_dense.build((None, _QA_HIDDEN))
        else:
            self.end_dense.build((None, hidden))
        if self.answerable_classifier:
            width = hidden
            if self.answerable_hidden is not None:
                self.answerable_hidden.build((None, 2 * hidden))
                width = _QA_HIDDEN
            self.answerable_dense.build((None, width))
        self.built = True

    def _joint_end_logits(self, start_states, sequence):
        """End logits given start representations [B, K, H] -> [B, K, T] (the reference's qa_hidden
        on concat(start, end) then qa_logits)."""
        hidden = sequence.shape[-1]
        kernel = tf.cast(self.qa_hidden.kernel, sequence.dtype)
        from_start = tf.einsum("bkh,hd->bkd", start_states, kernel[:hidden])
        from_end = tf.einsum("bth,hd->btd", sequence, kernel[hidden:])
        states = (
            from_start[:, :, None]
            + from_end[:, None]
            + tf.cast(self.qa_hidden.bias, sequence.dtype)
        )
        states = get_activation("gelu")(states)
        return tf.cast(tf.squeeze(self.end_dense(states), -1), tf.float32)

    def call(self, sequence, features, training=None):
        seq_length = tf.shape(sequence)[1]
        # Positions that may hold an answer: the context (segment 1, real tokens) and [CLS].
        allowed = tf.cast(features["input_mask"], tf.float32) * tf.cast(
            features["segment_ids"], tf.float32
        ) + tf.one_hot(0, seq_length)
        outside = _OUTSIDE * (allowed - 1.0)  # [B, T]
        start_logits = tf.cast(tf.squeeze(self.start_dense(sequence), -1), tf.float32) + outside
        outputs = {"start_logits": start_logits}
        if self.joint_prediction and training:
            gold_start = tf.gather(sequence, features["start_positions"][:, None], batch_dims=1)
            end_logits = self._joint_end_logits(gold_start, sequence)[:, 0] + outside
        elif self.joint_prediction:
            k = tf.minimum(self.beam_size, seq_length)
            start_log_probs, start_index = tf.math.top_k(tf.nn.log_softmax(start_logits), k=k)
            beam = self._joint_end_logits(tf.gather(sequence, start_index, batch_dims=1), sequence)
            end_log_probs, end_index = tf.math.top_k(
                tf.nn.log_softmax(beam + outside[:, None]), k=k
            )
            outputs.update(
                start_top_log_probs=start_log_probs,
                start_top_index=start_index,
                end_top_log_probs=end_log_probs,
                end_top_index=end_index,
            )
            end_logits = tf.zeros_like(start_logits)
        else:
            end_logits = tf.cast(tf.squeeze(self.end_dense(sequence), -1), tf.float32) + outside
        outputs["end_logits"] = end_logits
        losses = 0.5 * (
            cross_entropy(start_logits, features["start_positions"])
            + cross_entropy(end_logits, features["end_positions"])
        )
        if self.answerable_classifier:
            states = sequence[:, 0]
            if self.answerable_hidden is not None:
                start_probs = tf.cast(tf.nn.softmax(start_logits), sequence.dtype)
                expected_start = tf.einsum("bt,bth->bh", start_probs, sequence)
                states = self.answerable_hidden(tf.concat([states, expected_start], -1))
            logit = tf.cast(tf.squeeze(self.answerable_dense(states), -1), tf.float32)
            outputs["answerable_logit"] = logit
            losses += self.answerable_weight * tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.cast(features["is_impossible"], tf.float32), logits=logit
            )
        outputs["losses"] = losses
        return outputs


def cross_entropy(logits, labels):
    """Per-example sparse softmax cross-entropy."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
