"""Keras 3 building blocks of BERT/ELECTRA encoders, their pre-training and task heads, the size
files (`sizes`) and the networks factory (`networks`)."""

from electra_tf.modeling.config import EncoderConfig
from electra_tf.modeling.dropout import Dropout
from electra_tf.modeling.embeddings import Embeddings
from electra_tf.modeling.encoder import TransformerEncoder
from electra_tf.modeling.heads import DiscriminatorHead, MaskedLMHead, gather_positions
from electra_tf.modeling.mobilebert import (
    MobileBertConfig,
    MobileBertEncoder,
    MobileBertForPreTraining,
    MobileBertMaskedLMHead,
    NoNorm,
)
from electra_tf.modeling.task_heads import SentenceHead, SpanQAHead, TaggingHead
from electra_tf.modeling.transformer import SelfAttention, TransformerBlock, get_activation

__all__ = [
    "DiscriminatorHead",
    "Dropout",
    "Embeddings",
    "EncoderConfig",
    "MaskedLMHead",
    "MobileBertConfig",
    "MobileBertEncoder",
    "MobileBertForPreTraining",
    "MobileBertMaskedLMHead",
    "NoNorm",
    "SelfAttention",
    "SentenceHead",
    "SpanQAHead",
    "TaggingHead",
    "TransformerBlock",
    "TransformerEncoder",
    "gather_positions",
    "get_activation",
]
