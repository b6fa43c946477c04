"""ELECTRA vs masked LM vs no pre-training at equal pre-training FLOPs, end to end, on Korean.

  python benchmarks/replicate.py [--quick] [--output_dir DIR] [--report_dir DIR]

The whole study as one resumable sequence of this toolkit's own runs under `--output_dir`
(default `replicate_output/`, or `replicate_quick/` with `--quick`):

1. a slice of `../shared/corpora/ko_movie_reviews.txt` -> WordPiece vocabulary
   (`electra_tf.vocab.learn_wordpiece_vocab`) -> TFRecords (`pretraining_data.build_dataset`),
   and the context-free baseline of the masked-LM task on that data (stage `unigram`);
2. pre-training (`electra_tf.pretraining.trainer`) of two arms of the same encoder at the same
   pre-training FLOPs: ELECTRA (generator + discriminator) and a masked LM, which gets more steps
   because its step costs less; each is evaluated at several checkpoints (compute points);
3. fine-tuning (`run_finetuning`, several trials) of every arm at every compute point, and of the
   same encoder from random initialisation (no pre-training), on the Korean downstream tasks;
   then a diagnostic ELECTRA run with uniform replacements (can the discriminator learn at all?);
4. RESULTS.md and PNG plots in `--report_dir`, written only from the runs' own files (results
   JSON, evaluation JSON, TensorBoard event files, stage records).

Every stage records itself in `<output_dir>/stages/<name>.json` once finished and is skipped when
the command is run again; a stage killed midway resumes through the runs' own checkpoints.
`--report_only` writes the report from whatever stages have finished (marked partial).
"""

import argparse
import dataclasses
import datetime
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf
from absl import logging

# This checkout's electra_tf, whichever one is installed (as the other benchmarks do).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from electra_tf import fileio  # noqa: E402
from electra_tf import vocab as vocab_lib  # noqa: E402
from electra_tf.data import pretraining_data  # noqa: E402
from electra_tf.finetuning.config import FinetuningConfig  # noqa: E402
from electra_tf.finetuning.runner import run_finetuning  # noqa: E402
from electra_tf.pretraining import trainer  # noqa: E402
from electra_tf.pretraining.config import PretrainingConfig  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("ELECTRA_TF_SHARED", os.path.join(os.path.dirname(REPO), "shared"))
CORPUS = os.path.join(SHARED, "corpora", "ko_movie_reviews.txt")
FINETUNE = os.path.join(SHARED, "finetune")

ARMS = ("electra", "mlm", "random")
# A diagnostic run after the study: ELECTRA with replacements drawn uniformly from the vocabulary
# (no generator), so the discriminator's task does not wait for a generator to learn; half the
# ELECTRA arm's steps. It tells a discriminator that cannot learn from one that has had too little
# compute to learn against a generator's (frequent-token) replacements.
DIAGNOSTIC = "electra_uniform_generator"
ARM_LABELS = {"electra": "ELECTRA", "mlm": "masked LM", "random": "no pre-training"}
COLORS = {"electra": "#1f77b4", "mlm": "#d62728", "random": "#7f7f7f"}
# The score each task is judged by (a key of its results JSON), and how to print it.
TASKS = {
    "question_pair": ("accuracy", "accuracy"),
    "korsts": ("spearman", "Spearman"),
}
# Training/dev files of each task, from ../shared/finetune/<task>.
TASK_FILES = {
    "question_pair": {"train": "train.tsv", "dev": "dev.tsv", "header": True},
    "korsts": {"train": "sts-train.tsv", "dev": "sts-dev.tsv", "header": True},
}


@dataclasses.dataclass
class Setup:
    """One study's sizes. Both modes use the same code; only these numbers differ."""

    corpus_lines: int  # first lines of the Korean corpus (cut at a document boundary)
    vocab_lines: int  # the vocabulary is learned from the first lines of the slice
    vocab_size: int
    limit_alphabet: int
    max_seq_length: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    embedding_size: int
    generator_hidden_size: float
    electra_steps: int  # ELECTRA's steps; the masked LM gets the same FLOPs
    compute_points: int  # evaluation / fine-tuning points along each pre-training run
    train_batch_size: int
    learning_rate: float
    warmup_fraction: float
    num_eval_steps: int
    eval_batch_size: int
    tasks: tuple
    finetune_train_examples: int  # first examples of each task's train split
    finetune_eval_examples: int  # first examples of each task's dev split (0: all)
    finetune_seq_length: int
    finetune_epochs: float
    finetune_learning_rate: float
    finetune_batch_size: int
    num_trials: int


# Each size of the full study and of the quick one (`--quick`, CI), side by side:
# field=(full, quick).
_SIZES = dict(
    corpus_lines=(200_000, 3_000),
    vocab_lines=(60_000, 3_000),
    vocab_size=(8000, 1200),
    limit_alphabet=(2000, 600),
    max_seq_length=(64, 32),
    hidden_size=(128, 32),
    num_hidden_layers=(2, 1),
    num_attention_heads=(2, 1),
    intermediate_size=(512, 64),
    embedding_size=(128, 32),
    generator_hidden_size=(0.5, 0.5),
    electra_steps=(1000, 20),
    compute_points=(2, 1),
    train_batch_size=(32, 8),
    learning_rate=(1e-4, 3e-4),  # full: 3e-4 left the discriminator at its base rate (RESULTS.md)
    warmup_fraction=(0.1, 0.1),
    num_eval_steps=(16, 2),
    eval_batch_size=(64, 8),
    tasks=(("question_pair", "korsts"), ("question_pair", "korsts")),
    finetune_train_examples=(1500, 64),
    finetune_eval_examples=(0, 64),
    finetune_seq_length=(64, 32),
    finetune_epochs=(3.0, 1.0),
    finetune_learning_rate=(3e-4, 3e-4),
    finetune_batch_size=(32, 16),
    num_trials=(3, 2),
)
FULL = Setup(**{field: sizes[0] for field, sizes in _SIZES.items()})
QUICK = Setup(**{field: sizes[1] for field, sizes in _SIZES.items()})


# ----- FLOPs ------------------------------------------------------------------------------------
# A small counter of our own: electra_tf.modeling has none on this branch yet (another engineer is
# moving one there), and benchmarks/bench_pretraining.py's `train_flops_per_token` is fixed to
# ELECTRA-Small. Same rule as that one: matmul FLOPs only, training = 3 x forward (the backward
# pass costs twice the forward); layer norms, softmaxes and the optimizer are left out.


def encoder_flops(h, seq_len):
    """Forward matmul FLOPs of one sequence through an encoder described by BERT keys `h`."""
    hidden, inter = h["hidden_size"], h["intermediate_size"]
    emb = h.get("embedding_size") or hidden
    per_token = 2 * (4 * hidden * hidden + 2 * hidden * inter + 2 * seq_len * hidden)
    flops = seq_len * h["num_hidden_layers"] * per_token
    if emb != hidden:  # embeddings_project
        flops += seq_len * 2 * emb * hidden
    return flops


def mlm_head_flops(hidden, emb, vocab, positions):
    """The masked-LM head at `positions` tokens: Dense(hidden -> emb), then emb x vocab logits."""
    return positions * 2 * (hidden * emb + emb * vocab)


def train_flops_per_sequence(config):
    """Training matmul FLOPs of one sequence for a PretrainingConfig (ELECTRA or masked LM)."""
    disc = config.model_hparams()
    seq, vocab = config.max_seq_length, config.vocab_size
    emb = disc.get("embedding_size") or disc["hidden_size"]
    positions = config.max_predictions_per_seq
    if not config.electra_objective:
        forward = encoder_flops(disc, seq) + mlm_head_flops(
            disc["hidden_size"], emb, vocab, positions
        )
        return 3 * forward
    forward = 0
    if not config.uniform_generator:
        gen = config.generator_hparams()
        forward += encoder_flops(gen, seq)
        forward += mlm_head_flops(gen["hidden_size"], emb, vocab, positions)
    hidden = disc["hidden_size"]
    forward += encoder_flops(disc, seq) + seq * 2 * (hidden * hidden + hidden)  # + RTD head
    return 3 * forward


# ----- stages -----------------------------------------------------------------------------------


class Study:
    def __init__(self, setup, output_dir, report_dir, quick):
        self.setup = setup
        self.out = os.path.abspath(output_dir)
        self.report_dir = os.path.abspath(report_dir)
        self.quick = quick
        self.vocab_file = os.path.join(self.out, "vocab.txt")
        self.size_file = os.path.join(self.out, "model_size.json")

    def stage_path(self, name):
        return os.path.join(self.out, "stages", name + ".json")

    def done(self, name):
        return fileio.read_json(self.stage_path(name), missing_ok=True)

    def stage(self, name, fn):
        """Runs `fn` unless the stage has finished before; records its result and wall time."""
        record = self.done(name)
        if record is not None:
            logging.info("[skip] %s finished before (%.0f s)", name, record["wall_s"])
            return record
        logging.info("[stage] %s", name)
        start = time.time()
        record = dict(fn() or {})
        record["wall_s"] = time.time() - start
        record["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        )
        fileio.write_json_atomic(self.stage_path(name), record)
        return record

    # -- data --
    def corpus(self):
        """The first `corpus_lines` lines of the corpus, extended to the next document boundary."""
        path = os.path.join(self.out, "corpus", "ko_movie_reviews_slice.txt")
        lines = []
        with open(CORPUS, encoding="utf-8") as f:
            for line in f:
                if len(lines) >= self.setup.corpus_lines and not line.strip():
                    break
                lines.append(line)
        fileio.write_text_atomic(path, "".join(lines))
        return {
            "path": path,
            "lines": len(lines),
            "reviews": sum(1 for x in lines if x.strip()),
            "chars": sum(len(x) for x in lines),
        }

    def vocab(self, corpus):
        tokens = vocab_lib.learn_wordpiece_vocab(
            corpus["path"],
            self.vocab_file,
            vocab_size=self.setup.vocab_size,
            do_lower_case=False,  # Korean: lower-casing would also strip accents (NFD jamo)
            limit_alphabet=self.setup.limit_alphabet,
            max_lines=self.setup.vocab_lines,
        )
        return {"vocab_size": len(tokens)}

    def dataset(self, corpus):
        pretraining_data.build_dataset(
            pretraining_data.BuildOptions(
                corpus_dir=os.path.dirname(corpus["path"]),
                vocab_file=self.vocab_file,
                output_dir=os.path.join(self.out, "pretrain_tfrecords"),
                max_seq_length=self.setup.max_seq_length,
                do_lower_case=False,
                num_out_files=8,
                overwrite=True,
            )
        )
        return pretraining_data.read_dataset_info(os.path.join(self.out, "pretrain_tfrecords"))

    def unigram(self):
        """The context-free baseline of the masked-LM task: the entropy of the token frequencies in
        the pre-training data (the masked-LM loss of a model that predicts the frequencies alone)
        and the most frequent token's share (its accuracy). Special tokens are never masked, so
        they are left out."""
        data_dir = os.path.join(self.out, "pretrain_tfrecords")
        length = self.setup.max_seq_length
        spec = {k: tf.io.FixedLenFeature([length], tf.int64) for k in ("input_ids", "input_mask")}
        tokens = fileio.read_text(self.vocab_file).splitlines()
        counts = np.zeros(len(tokens), np.int64)
        files = tf.io.gfile.glob(os.path.join(data_dir, "pretrain_data.tfrecord*"))
        dataset = tf.data.TFRecordDataset(sorted(files)).batch(4096)
        for batch in dataset.map(lambda r: tf.io.parse_example(r, spec)):
            ids = batch["input_ids"].numpy()[batch["input_mask"].numpy() == 1]
            counts += np.bincount(ids, minlength=len(tokens))[: len(tokens)]
        for special in ("[PAD]", "[CLS]", "[SEP]", "[MASK]"):
            counts[tokens.index(special)] = 0
        p = counts / counts.sum()
        return {
            "entropy_nats": float(-(p[p > 0] * np.log(p[p > 0])).sum()),
            "top_token": tokens[int(p.argmax())],
            "top_token_share": float(p.max()),
            "tokens": int(counts.sum()),
        }

    def finetune_data(self):
        """Each task's folder under <output_dir>/finetuning_data: the first examples of its train
        (and dev) split, so every arm and trial sees the same data."""
        s, info = self.setup, {}
        for task in s.tasks:
            folder = os.path.join(self.out, "finetuning_data", task)
            spec = TASK_FILES[task]
            files = {}
            for split in ("train", "dev"):
                rows = fileio.read_text(os.path.join(FINETUNE, task, spec[split]))
                head, body = rows.splitlines(True)[:1], rows.splitlines(True)[1:]
                limit = s.finetune_train_examples if split == "train" else s.finetune_eval_examples
                files[spec[split]] = head + (body[:limit] if limit else body)
            for name, rows in files.items():
                fileio.write_text_atomic(os.path.join(folder, name), "".join(rows))
            info[task] = {name: len(rows) - 1 for name, rows in files.items()}  # minus header
        return info

    # -- pre-training --
    def size(self):
        s = self.setup
        size = {
            "description": "replicate.py's tiny encoder (written by benchmarks/replicate.py)",
            "hidden_size": s.hidden_size,
            "num_hidden_layers": s.num_hidden_layers,
            "num_attention_heads": s.num_attention_heads,
            "intermediate_size": s.intermediate_size,
            "embedding_size": s.embedding_size,
            "max_position_embeddings": 512,
            "generator_hidden_size": s.generator_hidden_size,
        }
        fileio.write_json_atomic(self.size_file, size)

    def pretrain_config(self, arm, vocab_size, steps):
        s = self.setup
        return PretrainingConfig(
            arm,
            self.out,
            model_size=self.size_file,
            electra_objective=arm != "mlm",
            uniform_generator=arm == DIAGNOSTIC,
            vocab_size=vocab_size,
            do_lower_case=False,
            max_seq_length=s.max_seq_length,
            train_batch_size=s.train_batch_size,
            eval_batch_size=s.eval_batch_size,
            num_eval_steps=s.num_eval_steps,
            learning_rate=s.learning_rate,
            num_warmup_steps=max(1, int(s.warmup_fraction * steps)),
            num_train_steps=steps,
            save_checkpoints_steps=steps // s.compute_points,
            keep_checkpoint_max=0,  # keep every compute point
            iterations_per_loop=max(1, min(100, steps // 10)),
            log_every_steps=max(1, min(50, steps // 20)),
            do_eval=True,
            seed=0,
        )

    def plan(self, vocab_size):
        """Steps per arm at equal FLOPs: ELECTRA's steps x its cost / the masked LM's cost."""
        s = self.setup
        electra = self.pretrain_config("electra", vocab_size, s.electra_steps)
        per_step = {
            "electra": train_flops_per_sequence(electra) * s.train_batch_size,
            "mlm": train_flops_per_sequence(self.pretrain_config("mlm", vocab_size, 10))
            * s.train_batch_size,
        }
        budget = per_step["electra"] * s.electra_steps
        steps = {"electra": s.electra_steps}
        # Rounded to a multiple of compute_points so every compute point is a checkpoint.
        k = s.compute_points
        steps["mlm"] = int(round(budget / per_step["mlm"] / k)) * k
        return {"flops_per_step": per_step, "steps": steps, "budget_flops": budget}

    def pretrain(self, arm, vocab_size, steps, flops_per_step):
        """Trains to each compute point in turn and evaluates there (eval JSON per point)."""
        config = self.pretrain_config(arm, vocab_size, steps)
        every = steps // self.setup.compute_points
        pretrainer = trainer.Pretrainer(config)
        points = []
        for k in range(1, self.setup.compute_points + 1):
            path = os.path.join(config.model_dir, "results", f"eval_point_{k}.json")
            result = fileio.read_json(path, missing_ok=True)
            if result is None:
                start = time.time()
                pretrainer.train(stop_at=k * every)
                train_s = time.time() - start
                result = pretrainer.evaluate()
                result["train_wall_s"] = train_s  # this process's time for this segment
                result["flops"] = result["global_step"] * flops_per_step
                fileio.write_json_atomic(path, result)
                if k == self.setup.compute_points:
                    pretrainer.write_results(result)
            points.append(result)
        return {"points": points, "model_dir": config.model_dir}

    # -- fine-tuning --
    def finetune(self, arm, task, checkpoint_step, vocab_size):
        s = self.setup
        tag = f"step{checkpoint_step}" if arm != "random" else "init"
        base = os.path.join(self.out, "models", arm)
        hparams = dict(
            task_names=[task],
            num_trials=s.num_trials,
            max_seq_length=s.finetune_seq_length,
            learning_rate=s.finetune_learning_rate,
            num_train_epochs=s.finetune_epochs,
            train_batch_size=s.finetune_batch_size,
            eval_batch_size=64,
            predict_batch_size=64,
            iterations_per_loop=100,
            double_unordered=False,  # time: the pairs are not also trained as (b, a)
            seed=0,
            model_dir=os.path.join(base, "finetuning_models", tag, "{task}_model_{trial}"),
            results_txt=os.path.join(base, "results", f"{tag}_{task}_results.txt"),
            results_json=os.path.join(base, "results", f"{tag}_{task}_results.json"),
        )
        if arm == "random":  # the same encoder, randomly initialised
            hparams.update(
                init_checkpoint=None,
                model_size=self.size_file,
                vocab_size=vocab_size,
                embedding_size=s.embedding_size,
                do_lower_case=False,
            )
        else:
            hparams["init_checkpoint"] = os.path.join(base, f"ckpt-{checkpoint_step}")
        config = FinetuningConfig(arm, self.out, **hparams)
        run_finetuning(config)
        results = fileio.read_json(config.results_json)
        return {"results_json": config.results_json, "summary": results["summary"][task]}

    # -- the whole study --
    def run(self):
        s = self.setup
        corpus = self.stage("corpus", self.corpus)
        vocab = self.stage("vocab", lambda: self.vocab(corpus))
        self.stage("pretraining_data", lambda: self.dataset(corpus))
        self.stage("unigram", self.unigram)
        self.stage("finetuning_data", self.finetune_data)
        self.size()
        plan = self.stage("plan", lambda: self.plan(vocab["vocab_size"]))
        for arm in ("electra", "mlm"):
            self.stage(
                f"pretrain_{arm}",
                lambda arm=arm: self.pretrain(
                    arm, vocab["vocab_size"], plan["steps"][arm], plan["flops_per_step"][arm]
                ),
            )
        for task in s.tasks:
            self.stage(
                f"finetune_random_{task}",
                lambda task=task: self.finetune("random", task, 0, vocab["vocab_size"]),
            )
        for k in range(s.compute_points, 0, -1):  # the full budget first, for every task
            for task in s.tasks:
                for arm in ("electra", "mlm"):
                    step = plan["steps"][arm] * k // s.compute_points
                    self.stage(
                        f"finetune_{arm}_step{step}_{task}",
                        lambda arm=arm, task=task, step=step: self.finetune(
                            arm, task, step, vocab["vocab_size"]
                        ),
                    )
        steps = s.electra_steps // 2
        flops = train_flops_per_sequence(
            self.pretrain_config(DIAGNOSTIC, vocab["vocab_size"], steps)
        )
        self.stage(
            f"pretrain_{DIAGNOSTIC}",
            lambda: self.pretrain(
                DIAGNOSTIC, vocab["vocab_size"], steps, flops * s.train_batch_size
            ),
        )
        return self.report()

    # -- the report --
    def report(self):
        import replicate_report  # noqa: PLC0415 -- beside this file

        return replicate_report.write_report(self)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="CI-sized smoke run (about 2 CPU minutes)"
    )
    parser.add_argument("--output_dir", help="runs go here (default replicate_output/)")
    parser.add_argument(
        "--report_dir",
        help="RESULTS.md and results/*.png go here (default: the repository root; "
        "with --quick: <output_dir>/report)",
    )
    parser.add_argument(
        "--report_only", action="store_true", help="write the report from the finished stages"
    )
    args = parser.parse_args(argv)
    if not os.path.exists(CORPUS):
        parser.error(f"needs the shared data: {CORPUS} is missing")
    output_dir = args.output_dir or os.path.join(
        REPO, "replicate_quick" if args.quick else "replicate_output"
    )
    report_dir = args.report_dir or (os.path.join(output_dir, "report") if args.quick else REPO)
    logging.set_verbosity(logging.INFO)
    study = Study(QUICK if args.quick else FULL, output_dir, report_dir, args.quick)
    written = study.report() if args.report_only else study.run()
    print(json.dumps(written, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    tf.config.threading.set_inter_op_parallelism_threads(2)
    main()
