"""The embedded default: the whole pipeline on the bundled corpus, a tiny model, CPU, minutes.

  electra-demo [--output_dir=demo_output] [--num_train_steps=300]

Learns a WordPiece vocabulary from the bundled public-domain corpus, builds TFRecords, pre-trains
the `demo` model size with the ELECTRA objective, evaluates and prints the reference's metrics
next to their chance levels. Each stage is the library call its own command makes
(`electra-learn-vocab`, `build_pretraining_dataset.py`, `run_pretraining.py`). Re-running
continues: finished stages and steps are skipped.
"""

import importlib.resources

import tensorflow as tf
from absl import logging

from electra_tf import cli, fileio, plots
from electra_tf import vocab as vocab_lib
from electra_tf.data import pretraining_data
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.trainer import run_pretraining

MAX_SEQ_LENGTH = 128
MODEL_NAME = "demo"


def corpus_dir():
    return str(importlib.resources.files("electra_tf") / "resources" / "demo_corpus")


def run_demo(output_dir, num_train_steps=300, vocab_size=4000, **hparams):
    """Runs every stage; returns (evaluation results, vocabulary size).

    `hparams` override the demo's `PretrainingConfig` (tests use a smaller model and batch).
    """
    output_dir = output_dir.rstrip("/")
    vocab_file = fileio.join(output_dir, "vocab.txt")
    if not tf.io.gfile.exists(vocab_file):
        logging.info("[1/4] Learning a %d-token WordPiece vocabulary", vocab_size)
        vocab_lib.learn_wordpiece_vocab(corpus_dir(), vocab_file, vocab_size=vocab_size)
    data_dir = fileio.join(output_dir, "pretrain_tfrecords")
    if pretraining_data.read_dataset_info(data_dir) is None:
        logging.info("[2/4] Building pre-training examples")
        pretraining_data.build_dataset(
            pretraining_data.BuildOptions(
                corpus_dir=corpus_dir(),
                vocab_file=vocab_file,
                output_dir=data_dir,
                max_seq_length=MAX_SEQ_LENGTH,
                num_out_files=8,
                overwrite=True,
            )
        )
    size = len(fileio.read_text(vocab_file).splitlines())
    settings = dict(
        model_size="demo",
        vocab_size=size,
        max_seq_length=MAX_SEQ_LENGTH,
        num_train_steps=num_train_steps,
        do_eval=True,
    )
    settings.update(hparams)
    config = PretrainingConfig(MODEL_NAME, output_dir, **settings)
    logging.info(
        "[3/4] Pre-training ELECTRA (model size 'demo') for %d steps, then [4/4] eval",
        num_train_steps,
    )
    return run_pretraining(config), size


FLAGS = (
    ("output_dir", str, "demo_output", "Where the vocabulary, data and model go."),
    ("num_train_steps", int, 300, "Pre-training steps."),
    ("demo_vocab_size", int, 4000, "Size of the WordPiece vocabulary to learn."),
)


def main(fv):
    results, size = run_demo(fv.output_dir, fv.num_train_steps, fv.demo_vocab_size)
    chance = {"masked_lm_accuracy": 1.0 / size, "disc_auc": 0.5}
    print("\nELECTRA demo finished. Evaluation on held data:")
    for key, value in results.items():
        note = f"   (chance: {chance[key]:.4f})" if key in chance else ""
        print(
            f"  {key:28s} {value:.4f}{note}" if isinstance(value, float) else f"  {key:28s} {value}"
        )
    model_dir = fileio.join(fv.output_dir, "models", MODEL_NAME)
    print(
        f"\nResults: {model_dir}/results/unsup_results.txt; "
        f"TensorBoard: tensorboard --logdir {model_dir}"
    )
    try:
        print("Training curves: " + ", ".join(plots.plot_model_dir(model_dir)))
    except ValueError as e:  # matplotlib is an optional extra
        print(f"No plot: {e}")


COMMAND = cli.Command(
    usage="[--output_dir=demo_output] [--num_train_steps=300]",
    flags=FLAGS,
    main=main,
)
run = COMMAND.entry_point

if __name__ == "__main__":
    run()
