"""The pre-training benchmarks' workload: one model size on synthetic full-length sequences.

Shared by bench_pretraining.py (throughput, memory) and profile_pretraining.py (where the time
goes). Batch 32, length 128, random token ids; the vocabulary size is the one the size is trained
with (`vocab_size_for`).
"""

import tempfile

import numpy as np
import tensorflow as tf

from electra_tf.data import records
from electra_tf.modeling import sizes
from electra_tf.modeling.config import EncoderConfig
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.trainer import Pretrainer

BATCH, LENGTH = 32, 128
ENGLISH_VOCAB = 30522  # the English uncased vocabulary of the released ELECTRA models
# Sizes trained with another vocabulary than their size file says (or than the default):
# `tiny` is the CLUE seed's Chinese ELECTRA-tiny, trained with the Chinese BERT vocabulary
# (../shared/vocab/zh_vocab.txt).
SIZE_VOCABS = {"tiny": 21128}


def vocab_size_for(model_size):
    """The vocabulary size `model_size` is trained with: its size file's `vocab_size`, else the
    `SIZE_VOCABS` entry, else the English 30,522."""
    size = sizes.load_model_size(model_size)
    return size.get("vocab_size", SIZE_VOCABS.get(model_size, ENGLISH_VOCAB))


def pretraining_config(model_size, data_dir="", **hparams):
    """The benchmark's PretrainingConfig for `model_size` (batch 32, length 128, its vocabulary)."""
    return PretrainingConfig(
        "bench",
        data_dir,
        model_size=model_size,
        vocab_size=vocab_size_for(model_size),
        max_seq_length=LENGTH,
        train_batch_size=BATCH,
        allow_missing_dataset_info=True,  # synthetic records, not a builder's output
        **hparams,
    )


def encoder_configs(model_size):
    """(discriminator, generator) `EncoderConfig`s of the benchmark's model for `model_size`."""
    config = pretraining_config(model_size)
    fields = set(EncoderConfig.__dataclass_fields__)
    return tuple(
        EncoderConfig(**{k: v for k, v in h.items() if k in fields})
        for h in (config.model_hparams(), config.generator_hparams())
    )


def make_pretrainer(hparams, steps, num_train_steps=10**6, model_size="small"):
    """A Pretrainer for `model_size`, batch 32, length 128, on random token ids of the size's
    vocabulary, running `steps` steps per loop call and never checkpointing."""
    vocab_size = vocab_size_for(model_size)
    data = tempfile.mkdtemp()
    tf.io.gfile.makedirs(data + "/pretrain_tfrecords")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
        f"w{i}" for i in range(vocab_size - 5)
    ]
    with open(data + "/vocab.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    rng = np.random.default_rng(0)
    with tf.io.TFRecordWriter(data + "/pretrain_tfrecords/pretrain_data.tfrecord-0-of-1") as w:
        for _ in range(BATCH * 4):
            ids = [2] + rng.integers(5, vocab_size, LENGTH - 2).tolist() + [3]
            w.write(
                records.encode_int64_example(
                    dict(input_ids=ids, input_mask=[1] * LENGTH, segment_ids=[0] * LENGTH)
                )
            )
    config = pretraining_config(
        model_size,
        data,
        num_train_steps=num_train_steps,
        iterations_per_loop=steps,
        save_checkpoints_steps=10**9,
        **hparams,
    )
    return Pretrainer(config)
