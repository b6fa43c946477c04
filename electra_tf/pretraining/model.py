"""The pre-training model: ELECTRA generator + discriminator, or a BERT/RoBERTa-style masked LM.

Same structure and losses as the reference's `run_pretraining.PretrainingModel`:
- token/position/type embeddings and the embedding LayerNorm are shared by generator and
  discriminator (each has its own `embeddings_project` when its hidden size differs);
- the generator's output layer is tied to the word embeddings and computes logits only at the
  masked positions;
- sampled tokens replace the masked ones (Gumbel-max with temperature, `disallow_correct`), and
  a sampled token equal to the original counts as real;
- loss = gen_weight * masked-LM loss + disc_weight * discriminator loss (over real tokens).
"""

import keras
import tensorflow as tf

from electra_tf.modeling import (
    DiscriminatorHead,
    Embeddings,
    EncoderConfig,
    MaskedLMHead,
    TransformerEncoder,
    gather_positions,
)
from electra_tf.pretraining import masking


class PretrainingModel(keras.Model):
    """Builds every sub-network from a `PretrainingConfig` and computes the pre-training losses."""

    def __init__(self, config, mask_id, special_ids, continuation_table=None, **kwargs):
        super().__init__(name="pretraining_model", **kwargs)
        self.config = config
        self._mask_id = mask_id
        self._special_ids = tuple(special_ids)
        self._continuation_table = continuation_table
        disc_config = EncoderConfig.from_dict(config.model_hparams())
        self.vocab_size = disc_config.vocab_size
        self.embeddings = Embeddings.from_encoder_config(disc_config, name="embeddings")
        self.discriminator = TransformerEncoder(
            disc_config, embeddings=self.embeddings, name="electra"
        )

        self.generator = None
        generator_embeddings = self.embeddings
        if config.uniform_generator:
            pass
        elif config.electra_objective and config.untied_generator:
            gen_config = EncoderConfig.from_dict(config.generator_hparams())
            if config.untied_generator_embeddings:
                generator_embeddings = Embeddings.from_encoder_config(
                    gen_config, name="generator_embeddings"
                )
            self.generator = TransformerEncoder(
                gen_config, embeddings=generator_embeddings, name="generator"
            )
        else:  # one network is both generator and discriminator (or a plain masked LM)
            self.generator = self.discriminator
        self.generator_head = None
        if self.generator is not None:
            self.generator_head = MaskedLMHead(
                generator_embeddings,
                activation=disc_config.hidden_act,
                initializer_range=disc_config.initializer_range,
                name="generator_predictions",
            )
        self.discriminator_head = None
        if config.electra_objective:
            self.discriminator_head = DiscriminatorHead(
                activation=disc_config.hidden_act,
                initializer_range=disc_config.initializer_range,
                name="discriminator_predictions",
            )

    def build_all(self, batch_size=2):
        """Creates every variable (optimizers and checkpoints need them before the first step)."""
        t = self.config.max_seq_length
        features = {
            "input_ids": tf.zeros([batch_size, t], tf.int32) + 5,
            "input_mask": tf.ones([batch_size, t], tf.int32),
            "segment_ids": tf.zeros([batch_size, t], tf.int32),
        }
        # The discriminator first, so that the shared embeddings are named electra/embeddings.
        self.discriminator(_encoder_inputs(features, features["input_ids"]))
        self.compute(features, tf.constant([0, 0], tf.int64), training=False)

    def call(self, features, training=False):
        """Discriminator per-token logits [B, T] (or the masked LM's sequence output)."""
        inputs = _encoder_inputs(features, features["input_ids"])
        sequence = self.discriminator(inputs, training=training)["sequence_output"]
        if self.discriminator_head is None:
            return sequence
        return self.discriminator_head(sequence)

    def compute(self, features, seed, training):
        """Masks, generates, discriminates; returns the total loss and everything metrics need.

        Args:
          features: dict of [B, T] int tensors `input_ids`, `input_mask`, `segment_ids` and
            optionally `is_word_start`.
          seed: int64 [2] stateless seed for this step and replica (masking and sampling).
          training: enables dropout.
        """
        config = self.config
        mask_seed = tf.random.experimental.stateless_fold_in(seed, 0, alg="philox")
        sample_seed = tf.random.experimental.stateless_fold_in(seed, 1, alg="philox")
        masked = masking.mask_inputs(
            features["input_ids"],
            features["input_mask"],
            mask_seed,
            mask_prob=config.mask_prob,
            max_predictions_per_seq=config.max_predictions_per_seq,
            mask_id=self._mask_id,
            special_ids=self._special_ids,
            strategy=config.mask_strategy,
            is_word_start=features.get("is_word_start"),
            continuation_table=self._continuation_table,
            with_replacement=config.masking_with_replacement,
        )
        positions = masked["masked_lm_positions"]  # [B, P]
        mlm_ids = masked["masked_lm_ids"]  # [B, P]
        mlm_weights = masked["masked_lm_weights"]  # [B, P] float32

        if self.generator is None:  # uniform generator
            logits = tf.zeros(tf.concat([tf.shape(mlm_ids), [self.vocab_size]], 0), tf.float32)
        else:
            gen_inputs = _encoder_inputs(features, masked["masked_input_ids"])
            gen_sequence = self.generator(gen_inputs, training=training)["sequence_output"]
            logits = self.generator_head(gather_positions(gen_sequence, positions))  # [B, P, V]
        log_probs = tf.nn.log_softmax(logits)
        mlm_nll = -tf.reduce_sum(log_probs * tf.one_hot(mlm_ids, self.vocab_size), -1)  # [B, P]
        mlm_loss = tf.reduce_sum(mlm_weights * mlm_nll) / (tf.reduce_sum(mlm_weights) + 1e-6)
        outputs = {
            "mlm_loss": mlm_loss,
            "mlm_nll": mlm_nll,
            "masked_lm_ids": mlm_ids,
            "masked_lm_weights": mlm_weights,
            "masked_lm_preds": tf.argmax(logits, -1, output_type=tf.int32),
        }
        total_loss = config.gen_weight * mlm_loss
        if config.electra_objective:
            disallow = tf.one_hot(mlm_ids, self.vocab_size) if config.disallow_correct else None
            sampled = tf.stop_gradient(
                masking.sample_from_softmax(
                    logits / config.temperature, sample_seed, disallow=disallow
                )
            )  # [B, P] ids
            fake_ids = masking.scatter_update(
                features["input_ids"],
                sampled,
                positions,
                mlm_weights,
                average_duplicates=config.masking_with_replacement,  # the reference's floor mean
            )
            labels = tf.cast(tf.not_equal(fake_ids, features["input_ids"]), tf.int32)  # [B, T]
            disc_inputs = _encoder_inputs(features, fake_ids)
            disc_sequence = self.discriminator(disc_inputs, training=training)["sequence_output"]
            disc_logits = self.discriminator_head(disc_sequence)  # [B, T] float32
            weights = tf.cast(features["input_mask"], tf.float32)
            losses = (
                tf.nn.sigmoid_cross_entropy_with_logits(
                    labels=tf.cast(labels, tf.float32), logits=disc_logits
                )
                * weights
            )
            disc_loss = tf.reduce_sum(losses) / (tf.reduce_sum(weights) + 1e-6)
            total_loss += config.disc_weight * disc_loss
            outputs.update(
                {
                    "disc_loss": disc_loss,
                    # The reference's disc_loss metric: each example's mean over its real tokens.
                    "disc_per_example_loss": tf.reduce_sum(losses, -1)
                    / (tf.reduce_sum(weights, -1) + 1e-6),
                    "disc_labels": labels,
                    "disc_probs": tf.sigmoid(disc_logits),
                    "disc_preds": tf.cast(disc_logits > 0, tf.int32),
                    "sampled_ids": sampled,
                    "input_mask": features["input_mask"],
                }
            )
        outputs["loss"] = total_loss
        return outputs


def _encoder_inputs(features, input_ids):
    return {
        "input_ids": input_ids,
        "input_mask": features["input_mask"],
        "segment_ids": features["segment_ids"],
    }
