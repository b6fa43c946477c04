"""The pre-training benchmarks' workload: ELECTRA-Small on synthetic full-length sequences.

Shared by bench_pretraining.py (throughput) and profile_pretraining.py (where the time goes).
"""

import tempfile

import numpy as np
import tensorflow as tf

from electra_tf.data import records
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.trainer import Pretrainer

BATCH, LENGTH, VOCAB = 32, 128, 30522


def make_pretrainer(hparams, steps, num_train_steps=10**6):
    """A Pretrainer for ELECTRA-Small, batch 32, length 128, vocab 30,522, on random token ids,
    running `steps` steps per loop call and never checkpointing."""
    data = tempfile.mkdtemp()
    tf.io.gfile.makedirs(data + "/pretrain_tfrecords")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(VOCAB - 5)]
    with open(data + "/vocab.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    rng = np.random.default_rng(0)
    with tf.io.TFRecordWriter(data + "/pretrain_tfrecords/pretrain_data.tfrecord-0-of-1") as w:
        for _ in range(BATCH * 4):
            ids = [2] + rng.integers(5, VOCAB, LENGTH - 2).tolist() + [3]
            w.write(
                records.encode_int64_example(
                    dict(input_ids=ids, input_mask=[1] * LENGTH, segment_ids=[0] * LENGTH)
                )
            )
    config = PretrainingConfig(
        "bench",
        data,
        model_size="small",
        vocab_size=VOCAB,
        max_seq_length=LENGTH,
        train_batch_size=BATCH,
        num_train_steps=num_train_steps,
        iterations_per_loop=steps,
        save_checkpoints_steps=10**9,
        allow_missing_dataset_info=True,  # synthetic records, not a builder's output
        **hparams,
    )
    return Pretrainer(config)
