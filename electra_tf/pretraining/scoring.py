"""`electra-score`: Electric's pseudo-log-likelihood of each line of a text file, one pass each.

Electric (Clark et al., 2020, "Pre-Training Transformers as Energy-Based Cloze Models") models
p(x_t | every other token) = exp(-E(x)_t) / Z, its discriminator producing the energy E(x)_t of
every token of the unmasked sentence at once. Noise-contrastive training makes the model
approximately self-normalised (log Z about 0): the NCE logit for "x_t is noise" is
E(x)_t + log q(x_t | context) + log(mask_prob / (1 - mask_prob)) (see
`electra_tf.pretraining.model.ElectricModel`), so -E(x)_t itself estimates log p(x_t | context);
the cloze model q is the training noise and is not part of the score. The pseudo-log-likelihood of
a sentence is then sum_t -E(x)_t over its tokens ([CLS], [SEP] and padding excluded): one forward
pass of the discriminator per sentence, where a masked LM needs one pass per token. Higher is more
likely, so it re-ranks candidates (speech recognition or translation n-best lists, ...).

`--score=cloze` scores with the other network instead: sum_t log q(x_t | every other token) of the
two-tower cloze model, also exact per token and also one pass (its towers never see the token they
predict). The energy needs a well-trained discriminator; a briefly trained model's cloze model is
often the better scorer (see the README for both rates on a model trained in a test).

    electra-score --model_dir DATA/models/NAME --input sentences.txt [--output scores.txt]

Lines stream through `tf.io.gfile` in batches (memory does not grow with the file); each line is
tokenized as in pre-training, `[CLS] tokens [SEP]`, cut to the model's `max_seq_length` (the number
of lines cut is logged). An empty line scores 0. The library call is `score_file` (or
`ElectricScorer(model_dir).score_lines(lines)` for an iterable of strings).
"""

import itertools
import math

import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf import cli, fileio, tokenization
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.model import build_pretraining_model
from electra_tf.training import model_dir as model_dir_lib

__all__ = ["COMMAND", "SCORES", "ElectricScorer", "score_file"]

# What a sentence's score sums over its tokens: Electric's -E(x)_t, or the cloze model's log q.
SCORES = ("energy", "cloze")


class ElectricScorer:
    """A pre-trained Electric model directory, ready to score sentences.

    Args:
      model_dir: a `run_pretraining.py` model directory (its latest checkpoint) trained with
        `electric_objective`, or one `ckpt-N` prefix in it.
      batch_size: sentences per forward pass.
      score: "energy" (Electric's, the default) or "cloze" (the two-tower cloze model's), see
        the module's doc.
      vocab_file: the vocabulary; default the model directory's `vocab.txt`, else the one its
        pre-training used (checked against the model's `vocab_info.json`).
    """

    def __init__(self, model_dir, batch_size=64, score="energy", vocab_file=None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        if score not in SCORES:
            raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}.")
        self.score = score
        folder = model_dir_lib.checkpoint_dir(model_dir)
        saved = model_dir_lib.read(folder, model_dir_lib.PRETRAIN_CONFIG)
        if saved is None:
            raise FileNotFoundError(
                f"{fileio.join(folder, model_dir_lib.PRETRAIN_CONFIG)} not found: --model_dir "
                "must be a run_pretraining.py model directory."
            )
        config = PretrainingConfig.from_hparams(
            saved, fileio.basename(folder), fileio.dirname(fileio.dirname(folder))
        )
        if not config.electric_objective:
            raise ValueError(
                f"The model in {folder} was not pre-trained with electric_objective: its "
                "discriminator gives no energies to score with."
            )
        if vocab_file is None:
            local = fileio.join(folder, model_dir_lib.VOCAB)
            vocab_file = local if tf.io.gfile.exists(local) else config.vocab_file
        if not tf.io.gfile.exists(vocab_file):
            raise FileNotFoundError(f"Vocabulary {vocab_file} not found; pass --vocab_file.")
        model_dir_lib.check_vocab(folder, vocab_file, config.do_lower_case)
        self.tokenizer = tokenization.FullTokenizer(vocab_file, config.do_lower_case)
        vocab = self.tokenizer.vocab
        self.cls_id, self.sep_id = vocab["[CLS]"], vocab["[SEP]"]
        self.max_seq_length = config.max_seq_length
        self.batch_size = int(batch_size)
        self.model = build_pretraining_model(
            config, vocab["[MASK]"], sorted({self.cls_id, self.sep_id, vocab["[MASK]"]})
        )
        self.model.build_all(batch_size=1)
        self.checkpoint = model_dir_lib.restore_variables(
            self.model.weights, model_dir, "--model_dir"
        )
        self.truncated = 0
        self._score_batch = tf.function(self._scores, reduce_retracing=True)

    def _scores(self, input_ids, input_mask):
        """[B] sum over the scored tokens of -E(x)_t (the discriminator's output, negated) or of
        log q(x_t | ...)."""
        features = {
            "input_ids": input_ids,
            "input_mask": input_mask,
            "segment_ids": tf.zeros_like(input_ids),
        }
        if self.score == "energy":
            token_scores = -self.model(features)  # [B, T]: the head's f(x)_t = E(x)_t
        else:
            log_q = tf.nn.log_softmax(self.model.cloze_logits(features))  # [B, T, V]
            token_scores = tf.gather(log_q, input_ids, batch_dims=2)  # [B, T]
        scored = tf.cast(input_mask, tf.float32)
        scored *= tf.cast(input_ids != self.cls_id, tf.float32)
        scored *= tf.cast(input_ids != self.sep_id, tf.float32)
        return tf.reduce_sum(token_scores * scored, -1)

    def encode(self, lines):
        """[B, T] input ids and mask for texts: `[CLS] tokens [SEP]`, cut to max_seq_length."""
        t = self.max_seq_length
        ids = np.zeros((len(lines), t), np.int32)
        mask = np.zeros((len(lines), t), np.int32)
        for row, tokens in enumerate(self.tokenizer.encode_batch(lines)):
            if len(tokens) > t - 2:
                self.truncated += 1
                tokens = tokens[: t - 2]
            piece = [self.cls_id, *tokens, self.sep_id]
            ids[row, : len(piece)] = piece
            mask[row, : len(piece)] = 1
        return ids, mask

    def score_lines(self, lines):
        """Yields one pseudo-log-likelihood (float) per text of the iterable `lines`, in order."""
        lines = iter(lines)
        while True:
            batch = list(itertools.islice(lines, self.batch_size))
            if not batch:
                return
            ids, mask = self.encode([line.rstrip("\r\n") for line in batch])
            n = len(batch)
            if n < self.batch_size:  # one static shape: pad the last batch
                ids = np.pad(ids, ((0, self.batch_size - n), (0, 0)))
                mask = np.pad(mask, ((0, self.batch_size - n), (0, 0)))
            scores = self._score_batch(tf.constant(ids), tf.constant(mask)).numpy()
            yield from (float(s) for s in scores[:n])


def _lines(path):
    with tf.io.gfile.GFile(path, "r") as f:
        yield from f


def score_file(
    model_dir, input_file, output_file=None, batch_size=64, score="energy", vocab_file=None
):
    """Scores every line of `input_file` (see `ElectricScorer`); writes one score per line to
    `output_file` (atomically, through a temporary file) or prints them. Returns the number of
    lines scored."""
    if not tf.io.gfile.exists(input_file):
        raise FileNotFoundError(f"--input {input_file} not found.")
    scorer = ElectricScorer(model_dir, batch_size=batch_size, score=score, vocab_file=vocab_file)
    logging.info("Scoring %s with %s", input_file, scorer.checkpoint)
    count = 0

    def counted():
        nonlocal count
        for value in scorer.score_lines(_lines(input_file)):
            count += 1
            yield _format(value)

    if output_file is None:
        for text in counted():
            print(text)
    else:
        parent = fileio.dirname(output_file)
        if parent and not parent.endswith("://"):
            tf.io.gfile.makedirs(parent)
        tmp = fileio.temporary_path(output_file)
        with tf.io.gfile.GFile(tmp, "w") as out:
            for text in counted():
                out.write(text + "\n")
        tf.io.gfile.rename(tmp, output_file, overwrite=True)
    if scorer.truncated:
        logging.warning(
            "%d of %d lines were longer than max_seq_length=%d tokens and were scored on their "
            "first %d tokens.",
            scorer.truncated,
            count,
            scorer.max_seq_length,
            scorer.max_seq_length - 2,
        )
    return count


def _format(score):
    return repr(score) if math.isfinite(score) else str(score)


def main(fv):
    score_file(
        fv.model_dir,
        fv.input,
        fv.output or None,
        batch_size=fv.batch_size,
        score=fv.score,
        vocab_file=fv.vocab_file or None,
    )


COMMAND = cli.Command(
    usage="--model_dir=DIR --input=FILE [--output=FILE] [--batch_size=64] [--score=energy]",
    flags=(
        ("model_dir", str, None, "An Electric run_pretraining.py model directory (or ckpt-N)."),
        ("input", str, None, "Text file: one sentence per line."),
        ("output", str, None, "Where to write one score per line (default: print them)."),
        ("batch_size", int, 64, "Sentences per forward pass."),
        ("score", SCORES, "energy", "energy: Electric's -sum E(x)_t; cloze: sum log q(x_t|...)."),
        ("vocab_file", str, None, "Vocabulary (default: the model's)."),
    ),
    main=main,
    required=("model_dir", "input"),
)
run = COMMAND.entry_point

if __name__ == "__main__":
    run()
