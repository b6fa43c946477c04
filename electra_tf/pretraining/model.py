"""The pre-training model: ELECTRA generator + discriminator, or a BERT/RoBERTa-style masked LM.

`PretrainingModel` takes built networks (see `electra_tf.modeling.networks`) and scalar settings,
as Model Garden's `ElectraPretrainer` does, so another encoder plugs in without touching the
objective. Same structure and losses as the reference's `run_pretraining.PretrainingModel`:
- masks are drawn in the graph (`electra_tf.pretraining.masking`);
- the generator's output layer is tied to its word embeddings and computes logits only at the
  masked positions;
- sampled tokens replace the masked ones (Gumbel-max with temperature, `disallow_correct`), and a
  sampled token equal to the original counts as real;
- loss = gen_weight * masked-LM loss + disc_weight * discriminator loss (over real tokens).

`build_pretraining_model(config, ...)` makes the networks and the model from a `PretrainingConfig`.
"""

import math

import keras
import tensorflow as tf

from electra_tf.modeling import (
    DiscriminatorHead,
    Embeddings,
    MaskedLMHead,
    TransformerEncoder,
    gather_positions,
)
from electra_tf.modeling import networks as networks_lib
from electra_tf.pretraining import masking


@keras.saving.register_keras_serializable(package="electra_tf")
class PretrainingModel(keras.Model):
    """Masks, generates, discriminates and computes the pre-training losses.

    Args:
      discriminator: encoder network (`TransformerEncoder`-like: called on a dict of
        `input_ids`, `input_mask`, `segment_ids`, returns a dict with `sequence_output`).
      generator: the generator encoder; the discriminator itself when they share every weight
        (or for a masked LM); None for a uniform generator.
      generator_head: masked-LM head over the generator's output (None with a uniform generator).
      discriminator_head: replaced-token detection head; None trains a masked LM.
      mask_id, special_ids: the vocabulary's [MASK] id and the ids never masked.
      max_seq_length: T, the static length `build_all` uses.
      mask_prob, max_predictions_per_seq, mask_strategy, masking_with_replacement: masking (see
        `electra_tf.pretraining.masking.mask_inputs`).
      continuation_ids: ids of WordPiece `##` pieces (whole-word masking without `is_word_start`).
      gen_weight, disc_weight: the loss mix.
      temperature, disallow_correct: generator sampling.

    Example:

    >>> from electra_tf.modeling import EncoderConfig, networks
    >>> nets = networks.build_pretraining_networks(
    ...     EncoderConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1,
    ...                   num_attention_heads=2, intermediate_size=32),
    ...     EncoderConfig(vocab_size=30, hidden_size=8, embedding_size=16, num_hidden_layers=1,
    ...                   num_attention_heads=1, intermediate_size=16))
    >>> model = PretrainingModel(nets.discriminator, nets.generator, nets.generator_head,
    ...                          nets.discriminator_head, mask_id=4, special_ids=(0, 2, 3),
    ...                          max_seq_length=8, max_predictions_per_seq=2)
    >>> model.build_all()
    >>> out = model.compute(model.dummy_features(), tf.constant([1, 2], tf.int64), False)
    >>> sorted(out)[:3]
    ['disc_labels', 'disc_loss', 'disc_per_example_loss']
    """

    def __init__(
        self,
        discriminator,
        generator=None,
        generator_head=None,
        discriminator_head=None,
        *,
        mask_id,
        special_ids,
        max_seq_length,
        mask_prob=0.15,
        max_predictions_per_seq=19,
        mask_strategy="uniform",
        masking_with_replacement=False,
        continuation_ids=None,
        gen_weight=1.0,
        disc_weight=50.0,
        temperature=1.0,
        disallow_correct=False,
        **kwargs,
    ):
        kwargs.setdefault("name", "pretraining_model")
        super().__init__(**kwargs)
        if (generator is None) != (generator_head is None):
            raise ValueError("generator and generator_head go together (both None: uniform).")
        if generator is None and discriminator_head is None:
            raise ValueError("A masked LM (no discriminator head) needs a generator head.")
        self.discriminator = discriminator
        self.generator = generator
        self.generator_head = generator_head
        self.discriminator_head = discriminator_head
        self.vocab_size = discriminator.config.vocab_size
        self.mask_id = int(mask_id)
        self.special_ids = tuple(int(i) for i in special_ids)
        self.max_seq_length = int(max_seq_length)
        self.mask_prob = float(mask_prob)
        self.max_predictions_per_seq = int(max_predictions_per_seq)
        self.mask_strategy = mask_strategy
        self.masking_with_replacement = bool(masking_with_replacement)
        self.continuation_ids = (
            None if continuation_ids is None else sorted(map(int, continuation_ids))
        )
        self.gen_weight = float(gen_weight)
        self.disc_weight = float(disc_weight)
        self.temperature = float(temperature)
        self.disallow_correct = bool(disallow_correct)
        self._continuation_table = None
        if mask_strategy == "whole_word" and self.continuation_ids is not None:
            self._continuation_table = masking.continuation_table(
                self.continuation_ids, self.vocab_size
            )

    @property
    def electra_objective(self):
        return self.discriminator_head is not None

    def dummy_features(self, batch_size=2):
        t = self.max_seq_length
        return {
            "input_ids": tf.zeros([batch_size, t], tf.int32) + 5,
            "input_mask": tf.ones([batch_size, t], tf.int32),
            "segment_ids": tf.zeros([batch_size, t], tf.int32),
        }

    def build_all(self, batch_size=2):
        """Creates every variable (optimizers and checkpoints need them before the first step)."""
        features = self.dummy_features(batch_size)
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

    def mask_features(self, features, seed):
        """The masking (`masking.mask_inputs`) this model's settings draw with `seed`."""
        return masking.mask_features(
            features, seed, self, self.mask_id, self.special_ids, self._continuation_table
        )

    def compute(self, features, seed, training):
        """Masks, generates, discriminates; returns the total loss and everything metrics need.

        Args:
          features: dict of [B, T] int tensors `input_ids`, `input_mask`, `segment_ids` and
            optionally `is_word_start`.
          seed: int64 [2] stateless seed for this step and replica (masking and sampling).
          training: enables dropout.
        """
        mask_seed = tf.random.experimental.stateless_fold_in(seed, 0, alg="philox")
        sample_seed = tf.random.experimental.stateless_fold_in(seed, 1, alg="philox")
        masked = self.mask_features(features, mask_seed)
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
        total_loss = self.gen_weight * mlm_loss
        if self.electra_objective:
            sampled, fake_ids = self.sample_fakes(
                features["input_ids"], logits, masked, sample_seed
            )
            labels = tf.cast(tf.not_equal(fake_ids, features["input_ids"]), tf.int32)  # [B, T]
            disc_logits = self.discriminator_logits(features, fake_ids, training)
            outputs.update(_discriminator_outputs(disc_logits, labels, features["input_mask"]))
            outputs["sampled_ids"] = sampled
            total_loss += self.disc_weight * outputs["disc_loss"]
        outputs["loss"] = total_loss
        return outputs

    def sample_fakes(self, input_ids, logits, masked, seed):
        """Samples from the generator's [B, P, V] `logits` (temperature, `disallow_correct`) and
        writes the samples into the masked positions; returns the [B, P] samples and the [B, T]
        corrupted ids."""
        mlm_ids = masked["masked_lm_ids"]
        disallow = tf.one_hot(mlm_ids, self.vocab_size) if self.disallow_correct else None
        sampled = tf.stop_gradient(
            masking.sample_from_softmax(logits / self.temperature, seed, disallow=disallow)
        )
        fake_ids = masking.scatter_update(
            input_ids,
            sampled,
            masked["masked_lm_positions"],
            tf.cast(masked["masked_lm_weights"], tf.float32),
            average_duplicates=self.masking_with_replacement,  # the reference's floor mean
        )
        return sampled, fake_ids

    def discriminator_logits(self, features, fake_ids, training):
        """[B, T] float32 replaced-token logits of the discriminator on the corrupted ids."""
        disc_inputs = _encoder_inputs(features, fake_ids)
        disc_sequence = self.discriminator(disc_inputs, training=training)["sequence_output"]
        return self.discriminator_head(disc_sequence)

    def get_config(self):
        """The discriminator and its head, the generator's networks (`_generator_config`, with
        their sharing) and the scalar settings."""
        config = super().get_config()
        head = self.discriminator_head
        config.update(
            {
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "discriminator_head": None
                if head is None
                else keras.saving.serialize_keras_object(head),
                "mask_id": self.mask_id,
                "special_ids": list(self.special_ids),
                "continuation_ids": self.continuation_ids,
                **{key: getattr(self, key) for key in _CONFIG_SCALARS},
                **self._generator_config(),
            }
        )
        return config

    def _generator_config(self):
        """The generator's networks as config entries; a model with another kind of generator
        (`ElectricModel`) overrides this and `_pop_generator`, the rest of the config is shared."""
        shares_all = self.generator is self.discriminator
        own_embeddings = (
            self.generator is not None
            and self.generator.embeddings is not self.discriminator.embeddings
        )
        return {
            "generator": None
            if self.generator is None or shares_all
            else keras.saving.serialize_keras_object(self.generator),
            "generator_is_discriminator": shares_all,
            "generator_embeddings": keras.saving.serialize_keras_object(self.generator.embeddings)
            if own_embeddings
            else None,
            "generator_head": None
            if self.generator_head is None
            else _without_embeddings(self.generator_head.get_config()),
        }

    @classmethod
    def from_config(cls, config):
        """Rebuilds the discriminator, then the generator's networks with the same sharing."""
        config = dict(config)
        discriminator = keras.saving.deserialize_keras_object(config.pop("discriminator"))
        head = config.pop("discriminator_head")
        if head is not None:
            head = keras.saving.deserialize_keras_object(
                head, custom_objects={"DiscriminatorHead": DiscriminatorHead}
            )
        for key in ("trainable", "dtype"):
            config.pop(key, None)
        generator_networks = cls._pop_generator(config, discriminator)
        return cls(discriminator, *generator_networks, head, **config)

    @classmethod
    def _pop_generator(cls, config, discriminator):
        """The generator and its head, sharing the discriminator's embeddings or whole encoder as
        `_generator_config` recorded."""
        generator_config = config.pop("generator")
        own_embeddings = config.pop("generator_embeddings")
        head_config = config.pop("generator_head")
        if config.pop("generator_is_discriminator"):
            generator = discriminator
        elif generator_config is None:
            return None, None
        else:
            inner = generator_config["config"]
            embeddings = (
                discriminator.embeddings
                if own_embeddings is None
                else Embeddings.from_config(own_embeddings["config"])  # built in the generator
            )
            generator = TransformerEncoder(
                inner["config"], embeddings=embeddings, name=inner.get("name")
            )
        return generator, MaskedLMHead(generator.embeddings, **head_config)


def _discriminator_outputs(disc_logits, labels, input_mask):
    """The discriminator's loss (sigmoid cross-entropy over the real tokens) and metric inputs,
    from its [B, T] logits and 0/1 replaced labels."""
    weights = tf.cast(input_mask, tf.float32)
    losses = (
        tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.cast(labels, tf.float32), logits=disc_logits
        )
        * weights
    )
    return {
        "disc_loss": tf.reduce_sum(losses) / (tf.reduce_sum(weights) + 1e-6),
        # The reference's disc_loss metric: each example's mean over its real tokens.
        "disc_per_example_loss": tf.reduce_sum(losses, -1) / (tf.reduce_sum(weights, -1) + 1e-6),
        "disc_labels": labels,
        "disc_probs": tf.sigmoid(disc_logits),
        "disc_preds": tf.cast(disc_logits > 0, tf.int32),
        "input_mask": input_mask,
    }


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectricModel(PretrainingModel):
    """Electric (an energy-based cloze model trained by noise-contrastive estimation), or ELECTRA
    with the reference's two-tower cloze generator: its `two_tower_generator`.

    The generator is a cloze model q(x_t | x_without_t): a left-to-right and a right-to-left tower
    read the unmasked input, and `cloze_head` turns their shifted, concatenated outputs into
    vocabulary logits at every position (`networks.two_tower_sequence_output`). As the reference:
    - the generator loss is the cloze loss: cross-entropy of every real, non-special token;
      `mlm_loss` and the masked-LM metrics use the cloze logits at the masked positions;
    - replacements are sampled from those logits (temperature, `disallow_correct`) into the
      masked positions;
    - with `electric_objective`, every masked position is labelled fake (even a sample equal to the
      original), and the discriminator's logit becomes the noise-contrastive one:
      f(x)_t + stop_gradient(log q(x_t)) + log(mask_prob / (1 - mask_prob)), f being the
      discriminator head's output (Electric's energy E(x)_t); without it, the labels and the
      logit are ELECTRA's;
    - loss = gen_weight * cloze loss + disc_weight * discriminator loss.

    Args:
      discriminator, discriminator_head: as `PretrainingModel`.
      generator_ltr, generator_rtl: the towers (`TransformerEncoder`s with attention_direction
        "ltr" and "rtl").
      cloze_head: `MaskedLMHead` over the towers' concatenated outputs.
      electric_objective: the Electric labels and logit correction (see above).
      **settings: masking, loss-mix and sampling settings of `PretrainingModel`.
    """

    def __init__(
        self,
        discriminator,
        generator_ltr,
        generator_rtl,
        cloze_head,
        discriminator_head,
        *,
        electric_objective=True,
        **settings,
    ):
        if discriminator_head is None:
            raise ValueError("A two-tower generator trains a discriminator: pass its head.")
        settings.setdefault("name", "electric_model" if electric_objective else "pretraining_model")
        super().__init__(discriminator, None, None, discriminator_head, **settings)
        self.generator_ltr = generator_ltr
        self.generator_rtl = generator_rtl
        self.cloze_head = cloze_head
        self.electric_objective = bool(electric_objective)
        # Added to the logit of every token: log of the noise-to-data ratio k / (n - k).
        self.log_noise_ratio = math.log(self.mask_prob / (1.0 - self.mask_prob))

    def cloze_logits(self, features, training=False):
        """[B, T, V] float32 logits of q(x_t | every other token), from the unmasked input."""
        inputs = _encoder_inputs(features, features["input_ids"])
        sequence = networks_lib.two_tower_sequence_output(
            self.generator_ltr, self.generator_rtl, inputs, training=training
        )
        return self.cloze_head(sequence)

    def compute(self, features, seed, training):
        """Masks, samples from the cloze model, discriminates; see `compute_masked`."""
        mask_seed = tf.random.experimental.stateless_fold_in(seed, 0, alg="philox")
        sample_seed = tf.random.experimental.stateless_fold_in(seed, 1, alg="philox")
        masked = self.mask_features(features, mask_seed)
        return self.compute_masked(features, masked, training, sample_seed=sample_seed)

    def compute_masked(self, features, masked, training, sample_seed=None, fake_input_ids=None):
        """The losses and everything metrics need, for a given masking.

        Args:
          features: dict of [B, T] int tensors `input_ids`, `input_mask`, `segment_ids`.
          masked: dict with [B, P] `masked_lm_positions`, `masked_lm_ids`, `masked_lm_weights`
            (what `mask_features` returns).
          sample_seed: int64 [2] stateless seed of the generator's sampling.
          fake_input_ids: [B, T] corrupted ids to use instead of sampling (to replay a step of
            another run, e.g. the reference's); the samples are read from it at the positions.
        """
        input_ids, input_mask = features["input_ids"], features["input_mask"]
        positions = masked["masked_lm_positions"]  # [B, P]
        mlm_ids = masked["masked_lm_ids"]  # [B, P]
        mlm_weights = tf.cast(masked["masked_lm_weights"], tf.float32)  # [B, P]

        cloze_logits = self.cloze_logits(features, training=training)  # [B, T, V]
        cloze_log_probs = tf.nn.log_softmax(cloze_logits)
        special = tf.reduce_any(
            tf.equal(input_ids[..., None], tf.constant(self.special_ids, input_ids.dtype)), -1
        )
        cloze_weights = tf.cast(tf.logical_and(input_mask > 0, ~special), tf.float32)  # [B, T]
        cloze_nll = -tf.gather(cloze_log_probs, input_ids, batch_dims=2)  # [B, T]
        cloze_loss = tf.reduce_sum(cloze_weights * cloze_nll) / (
            tf.reduce_sum(cloze_weights) + 1e-6
        )

        logits = gather_positions(cloze_logits, positions)  # [B, P, V]
        mlm_nll = -tf.gather(tf.nn.log_softmax(logits), mlm_ids, batch_dims=2)  # [B, P]
        mlm_loss = tf.reduce_sum(mlm_weights * mlm_nll) / (tf.reduce_sum(mlm_weights) + 1e-6)

        if fake_input_ids is None:
            sampled, fake_ids = self.sample_fakes(input_ids, logits, masked, sample_seed)
        else:
            fake_ids = tf.cast(fake_input_ids, input_ids.dtype)
            sampled = tf.gather(fake_ids, positions, batch_dims=1)
        if self.electric_objective:
            # Every masked position is noise, whatever was sampled there.
            labels = masking.scatter_update(
                tf.zeros_like(input_ids), tf.ones_like(positions), positions, mlm_weights
            )
        else:
            labels = tf.cast(tf.not_equal(fake_ids, input_ids), tf.int32)
        labels = tf.cast(labels, tf.int32)  # [B, T]

        disc_logits = self.discriminator_logits(features, fake_ids, training)
        if self.electric_objective:
            log_q = tf.stop_gradient(tf.gather(cloze_log_probs, fake_ids, batch_dims=2))
            disc_logits = disc_logits + log_q + self.log_noise_ratio
        outputs = _discriminator_outputs(disc_logits, labels, input_mask)
        outputs.update(
            {
                "loss": self.gen_weight * cloze_loss + self.disc_weight * outputs["disc_loss"],
                "cloze_loss": cloze_loss,
                "mlm_loss": mlm_loss,
                "mlm_nll": mlm_nll,
                "masked_lm_ids": mlm_ids,
                "masked_lm_weights": mlm_weights,
                "masked_lm_preds": tf.argmax(logits, -1, output_type=tf.int32),
                "sampled_ids": sampled,
                "fake_input_ids": fake_ids,
            }
        )
        return outputs

    def _generator_config(self):
        return {
            "generator_ltr": keras.saving.serialize_keras_object(self.generator_ltr),
            "generator_rtl": keras.saving.serialize_keras_object(self.generator_rtl),
            "untied_generator_embeddings": self.generator_ltr.embeddings
            is not self.discriminator.embeddings,
            "cloze_head": _without_embeddings(self.cloze_head.get_config()),
        }

    def get_config(self):
        return {**super().get_config(), "electric_objective": self.electric_objective}

    @classmethod
    def _pop_generator(cls, config, discriminator):
        """The two towers (sharing the discriminator's embeddings unless untied) and the cloze
        head."""
        shared = None if config.pop("untied_generator_embeddings") else discriminator.embeddings
        towers = []
        for key in ("generator_ltr", "generator_rtl"):
            inner = config.pop(key)["config"]
            towers.append(
                TransformerEncoder(
                    inner["config"],
                    embeddings=shared,
                    attention_direction=inner["attention_direction"],
                    name=inner.get("name"),
                )
            )
        return (*towers, MaskedLMHead(towers[0].embeddings, **config.pop("cloze_head")))


# `PretrainingModel` arguments that are `PretrainingConfig` hparams of the same name.
_CONFIG_SCALARS = (
    "max_seq_length",
    "mask_prob",
    "max_predictions_per_seq",
    "mask_strategy",
    "masking_with_replacement",
    "gen_weight",
    "disc_weight",
    "temperature",
    "disallow_correct",
)


def build_pretraining_model(config, mask_id, special_ids, continuation_ids=None):
    """The networks and the `PretrainingModel` (an `ElectricModel` with `two_tower_generator`) a
    `PretrainingConfig` describes (not yet built)."""
    settings = {key: getattr(config, key) for key in _CONFIG_SCALARS}
    settings.update(mask_id=mask_id, special_ids=special_ids)
    settings["continuation_ids"] = (
        continuation_ids if config.mask_strategy == "whole_word" else None
    )
    if config.two_tower_generator:
        towers = networks_lib.build_two_tower_networks(
            config.model_hparams(),
            config.generator_hparams(),
            untied_generator_embeddings=config.untied_generator_embeddings,
        )
        # The networks' fields are named as the models' arguments.
        return ElectricModel(
            **vars(towers), electric_objective=config.electric_objective, **settings
        )
    nets = networks_lib.build_pretraining_networks(
        config.model_hparams(),
        config.generator_hparams(),
        electra_objective=config.electra_objective,
        uniform_generator=config.uniform_generator,
        untied_generator=config.untied_generator,
        untied_generator_embeddings=config.untied_generator_embeddings,
    )
    return PretrainingModel(**vars(nets), **settings)


def _without_embeddings(head_config):
    head_config = dict(head_config)
    head_config.pop("embeddings", None)
    return head_config


def _encoder_inputs(features, input_ids):
    return {
        "input_ids": input_ids,
        "input_mask": features["input_mask"],
        "segment_ids": features["segment_ids"],
    }
