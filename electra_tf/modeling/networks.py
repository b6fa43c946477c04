"""The networks factory: built encoders and heads for pre-training, from encoder configs.

`build_pretraining_networks` makes what `electra_tf.pretraining.model.PretrainingModel` takes:
the discriminator (or masked LM) encoder, the generator (its own small encoder, the discriminator
itself, or none for a uniform generator), the generator's masked-LM head tied to the generator's
word embeddings, and the discriminator's replaced-token head. The reference's layout: one
`Embeddings` shared by generator and discriminator unless `untied_generator_embeddings`.

`build_encoder` makes the encoder an `encoder_config.json` describes: a `TransformerEncoder`, or a
`MobileBertEncoder` when the file says `"model_type": "mobilebert"` (what the distiller writes);
`encoder_config_from_dict` / `encoder_config_to_dict` read and write that file's dict.

`build_two_tower_networks` makes what `electra_tf.pretraining.model.ElectricModel` takes: the
discriminator and its head as above, and Electric's two-tower cloze generator: a left-to-right and a
right-to-left encoder (`generator_ltr`, `generator_rtl`, sharing the discriminator's embeddings
unless untied) whose outputs, shifted one position (`two_tower_sequence_output`), predict each
token from the tokens on both sides of it but never from itself, through `cloze_predictions`, a
masked-LM head tied to the left-to-right tower's word embeddings.

Example:

>>> from electra_tf.modeling import EncoderConfig, networks
>>> disc = EncoderConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
...                      num_attention_heads=2, intermediate_size=64)
>>> gen = EncoderConfig(vocab_size=100, embedding_size=32, hidden_size=8, num_hidden_layers=2,
...                     num_attention_heads=1, intermediate_size=32)
>>> nets = networks.build_pretraining_networks(disc, gen)
>>> nets.generator.embeddings is nets.discriminator.embeddings
True
"""

import dataclasses

import tensorflow as tf

from electra_tf.modeling.config import EncoderConfig
from electra_tf.modeling.embeddings import Embeddings
from electra_tf.modeling.encoder import TransformerEncoder
from electra_tf.modeling.heads import DiscriminatorHead, MaskedLMHead
from electra_tf.modeling.mobilebert import MobileBertConfig, MobileBertEncoder

# Layer names: the reference's top-level variable scopes.
DISCRIMINATOR = "electra"
GENERATOR = "generator"
GENERATOR_HEAD = "generator_predictions"
DISCRIMINATOR_HEAD = "discriminator_predictions"
GENERATOR_LTR = "generator_ltr"
GENERATOR_RTL = "generator_rtl"
CLOZE_HEAD = "cloze_predictions"


@dataclasses.dataclass
class PretrainingNetworks:
    """Built (not yet called) networks of a pre-training model.

    generator: None for a uniform generator; the discriminator itself when generator and
      discriminator share all weights (or for a plain masked LM).
    generator_head: None only for a uniform generator.
    discriminator_head: None for a masked LM.
    """

    discriminator: TransformerEncoder
    generator: TransformerEncoder | None
    generator_head: MaskedLMHead | None
    discriminator_head: DiscriminatorHead | None


def build_pretraining_networks(
    discriminator_config,
    generator_config=None,
    *,
    electra_objective=True,
    uniform_generator=False,
    untied_generator=True,
    untied_generator_embeddings=False,
):
    """The networks of an ELECTRA (or masked-LM) model.

    Args:
      discriminator_config: `EncoderConfig` (or dict) of the discriminator / masked LM.
      generator_config: `EncoderConfig` (or dict) of a separate generator; needed when
        `electra_objective and untied_generator and not uniform_generator`.
      electra_objective: False builds a masked LM (no discriminator head, the encoder is its
        own generator).
      uniform_generator: no generator network; replacements are sampled uniformly.
      untied_generator: False makes the discriminator its own generator.
      untied_generator_embeddings: the generator gets its own embeddings (of its hidden size).
    """
    disc_config = _config(discriminator_config)
    embeddings = Embeddings.from_encoder_config(disc_config, name="embeddings")
    discriminator = TransformerEncoder(disc_config, embeddings=embeddings, name=DISCRIMINATOR)
    generator, generator_embeddings = discriminator, embeddings
    if uniform_generator and electra_objective:
        generator = None
    elif electra_objective and untied_generator:
        if generator_config is None:
            raise ValueError("An untied generator needs generator_config.")
        gen_config = _config(generator_config)
        if untied_generator_embeddings:
            generator_embeddings = Embeddings.from_encoder_config(
                gen_config, name="generator_embeddings"
            )
        generator = TransformerEncoder(gen_config, embeddings=generator_embeddings, name=GENERATOR)
    generator_head = None
    if generator is not None:
        generator_head = MaskedLMHead(
            generator_embeddings,
            activation=disc_config.hidden_act,
            initializer_range=disc_config.initializer_range,
            name=GENERATOR_HEAD,
        )
    discriminator_head = None
    if electra_objective:
        discriminator_head = DiscriminatorHead(
            activation=disc_config.hidden_act,
            initializer_range=disc_config.initializer_range,
            name=DISCRIMINATOR_HEAD,
        )
    return PretrainingNetworks(discriminator, generator, generator_head, discriminator_head)


# The `model_type` key of encoder_config.json; absent means a BERT/ELECTRA `EncoderConfig`.
MODEL_TYPE = "model_type"
MOBILEBERT = "mobilebert"
_MODEL_TYPES = ("electra", "bert", MOBILEBERT)


def encoder_config_from_dict(values):
    """An `encoder_config.json` dict -> `EncoderConfig`, or `MobileBertConfig` for
    `"model_type": "mobilebert"`; configs pass through unchanged."""
    if isinstance(values, (EncoderConfig, MobileBertConfig)):
        return values
    values = dict(values)
    model_type = values.pop(MODEL_TYPE, None)
    if model_type is not None and model_type not in _MODEL_TYPES:
        raise ValueError(
            f"Unknown encoder model_type {model_type!r}; expected one of {', '.join(_MODEL_TYPES)}."
        )
    if model_type == MOBILEBERT:
        return MobileBertConfig.from_dict(values)
    return EncoderConfig.from_dict(values)


def encoder_config_to_dict(config):
    """The `encoder_config.json` dict of a config (`model_type` only for MobileBERT)."""
    values = config.to_dict()
    if isinstance(config, MobileBertConfig):
        values[MODEL_TYPE] = MOBILEBERT
    return values


def build_encoder(config, name=DISCRIMINATOR):
    """The (unbuilt) encoder of an `EncoderConfig`, a `MobileBertConfig` or their dict form.

    Both kinds return `sequence_output`, `pooled_output`, `embedding_output` and
    `encoder_outputs`, so task heads take either.
    """
    config = encoder_config_from_dict(config)
    if isinstance(config, MobileBertConfig):
        return MobileBertEncoder(config, name=name)
    return TransformerEncoder(config, name=name)


def _config(config):
    return EncoderConfig.from_dict(config) if isinstance(config, dict) else config


@dataclasses.dataclass
class TwoTowerNetworks:
    """Built (not yet called) networks of an Electric model (or ELECTRA with a two-tower generator).

    generator_ltr, generator_rtl: the cloze generator's towers (left-to-right, right-to-left).
    cloze_head: vocabulary logits from the towers' concatenated outputs, tied to the
      left-to-right tower's word embeddings.
    """

    discriminator: TransformerEncoder
    generator_ltr: TransformerEncoder
    generator_rtl: TransformerEncoder
    cloze_head: MaskedLMHead
    discriminator_head: DiscriminatorHead


def build_two_tower_networks(
    discriminator_config, generator_config, *, untied_generator_embeddings=False
):
    """The networks of the reference's `two_tower_generator` (Electric's generator).

    Args:
      discriminator_config: `EncoderConfig` (or dict) of the discriminator.
      generator_config: `EncoderConfig` (or dict) of each tower (the reference's generator config).
      untied_generator_embeddings: each tower gets its own embeddings (`generator_ltr/embeddings`,
        `generator_rtl/embeddings`); the cloze head is tied to the left-to-right tower's.

    Example:

    >>> from electra_tf.modeling import EncoderConfig, networks
    >>> disc = EncoderConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1,
    ...                      num_attention_heads=2, intermediate_size=64)
    >>> gen = EncoderConfig(vocab_size=100, embedding_size=32, hidden_size=8,
    ...                     num_hidden_layers=1, num_attention_heads=1, intermediate_size=32)
    >>> nets = networks.build_two_tower_networks(disc, gen)
    >>> nets.generator_rtl.embeddings is nets.discriminator.embeddings
    True
    """
    disc_config = _config(discriminator_config)
    gen_config = _config(generator_config)
    embeddings = Embeddings.from_encoder_config(disc_config, name="embeddings")
    discriminator = TransformerEncoder(disc_config, embeddings=embeddings, name=DISCRIMINATOR)
    shared = None if untied_generator_embeddings else embeddings
    ltr = TransformerEncoder(
        gen_config, embeddings=shared, attention_direction="ltr", name=GENERATOR_LTR
    )
    rtl = TransformerEncoder(
        gen_config, embeddings=shared, attention_direction="rtl", name=GENERATOR_RTL
    )
    cloze_head = MaskedLMHead(
        ltr.embeddings,
        activation=disc_config.hidden_act,
        initializer_range=disc_config.initializer_range,
        name=CLOZE_HEAD,
    )
    discriminator_head = DiscriminatorHead(
        activation=disc_config.hidden_act,
        initializer_range=disc_config.initializer_range,
        name=DISCRIMINATOR_HEAD,
    )
    return TwoTowerNetworks(discriminator, ltr, rtl, cloze_head, discriminator_head)


def two_tower_sequence_output(generator_ltr, generator_rtl, inputs, training=None):
    """[B, T, 2 Hg]: at position t, the left-to-right tower's output at t - 1 (it has seen tokens
    up to t - 1) beside the right-to-left tower's at t + 1 (tokens from t + 1); the ends wrap
    around, as in the reference's `roll`."""
    ltr = generator_ltr(inputs, training=training)["sequence_output"]  # [B, T, Hg]
    rtl = generator_rtl(inputs, training=training)["sequence_output"]  # [B, T, Hg]
    return tf.concat([tf.roll(ltr, 1, axis=1), tf.roll(rtl, -1, axis=1)], -1)
