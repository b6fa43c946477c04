"""Pre-training end to end: data checks, model, optimizer, training loop, evaluation, results."""

import pickle

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from sklearn import metrics as sk_metrics

from electra_tf import fileio, tokenization
from electra_tf.modeling import flops
from electra_tf.pretraining import input_pipeline
from electra_tf.pretraining.model import build_pretraining_model
from electra_tf.training import distribution, loop, optimization, seeds
from electra_tf.training import model_dir as model_dir_lib

EVAL_METRICS = (
    "loss",
    "masked_lm_accuracy",
    "masked_lm_loss",
    "sampled_masked_lm_accuracy",
    "disc_loss",
    "disc_auc",
    "disc_accuracy",
    "disc_precision",
    "disc_recall",
)


def vocab_facts(config):
    """[MASK] id, the ids never masked, and the ids of '##' continuation pieces."""
    tokenizer = tokenization.FullTokenizer(config.vocab_file, config.do_lower_case)
    vocab = tokenizer.vocab
    missing = [t for t in ("[CLS]", "[SEP]", "[MASK]") if t not in vocab]
    if missing:
        raise ValueError(
            f"Vocabulary {config.vocab_file} lacks {missing}; pre-training needs them."
        )
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(
            f"Vocabulary {config.vocab_file} has {tokenizer.vocab_size} tokens but vocab_size is "
            f"{config.vocab_size}. Pass --hparams '{{\"vocab_size\": {tokenizer.vocab_size}}}'."
        )
    special = sorted({vocab["[CLS]"], vocab["[SEP]"], vocab["[MASK]"], vocab.get("[PAD]", 0)})
    continuation = sorted(i for token, i in vocab.items() if token.startswith("##"))
    return vocab["[MASK]"], special, continuation


def create_optimizer(config):
    """The reference's AdamW with linear warm-up and polynomial decay for a `PretrainingConfig`."""
    return optimization.create_optimizer(
        config.learning_rate,
        config.num_train_steps,
        weight_decay_rate=config.weight_decay_rate,
        warmup_steps=config.num_warmup_steps,
        lr_decay_power=config.lr_decay_power,
    )


class Pretrainer:
    """Everything `run_pretraining.py` does, as an object tests and benchmarks can drive."""

    def __init__(self, config, strategy=None):
        self.config = config
        self.strategy = distribution.strategy_for(
            config, strategy, ("train_batch_size", "eval_batch_size")
        )
        self.files = input_pipeline.list_input_files(config.pretrain_tfrecords)
        self.data_info = input_pipeline.check_dataset_info(
            config.pretrain_tfrecords,
            config.vocab_file,
            config.max_seq_length,
            allow_missing_info=config.allow_missing_dataset_info,
            do_lower_case=config.do_lower_case,
        )
        self.with_word_starts = bool(
            self.data_info and "is_word_start" in self.data_info["features"]
        )
        if config.mask_strategy == "whole_word" and not self.with_word_starts:
            logging.info("Whole-word masking from '##' WordPiece continuation pieces.")
        mask_id, special_ids, continuation_ids = vocab_facts(config)
        keras.utils.set_random_seed(config.seed)  # the same initial weights and dropout streams
        with self.strategy.scope():
            self.model = build_pretraining_model(config, mask_id, special_ids, continuation_ids)
            self.model.build_all()
            self.optimizer = create_optimizer(config)
            self.optimizer.build(self.model.trainable_variables)
        self._loop = None

    def _write_model_description(self):
        """The encoder's and the run's configs beside the checkpoints, so fine-tuning and
        conversion find the model's shape in its directory."""
        folder = self.config.model_dir
        model_dir_lib.write(
            folder, model_dir_lib.ENCODER_CONFIG, self.model.discriminator.config.to_dict()
        )
        model_dir_lib.write(folder, model_dir_lib.PRETRAIN_CONFIG, self.config.to_dict())
        info = model_dir_lib.vocab_info(self.config.vocab_file, self.config.do_lower_case)
        model_dir_lib.write(folder, model_dir_lib.VOCAB_INFO, info)

    def _dataset_fn(self, batch_size, is_training, seed):
        def dataset_fn(input_context):
            per_replica = input_context.get_per_replica_batch_size(batch_size)
            return input_pipeline.make_dataset(
                self.files,
                per_replica,
                self.config.max_seq_length,
                seed,
                is_training=is_training,
                with_word_starts=self.with_word_starts,
                input_context=input_context,
                on_corrupt_shard=self.config.on_corrupt_shard,
            )

        return dataset_fn

    def _loss_fn(self, features, seed, training):
        out = self.model.compute(features, seed, training)
        w = out["masked_lm_weights"]
        scalars = {
            "masked_lm_loss": out["mlm_loss"],
            "masked_lm_accuracy": _weighted_accuracy(
                out["masked_lm_ids"], out["masked_lm_preds"], w
            ),
        }
        if "disc_loss" in out:
            mask = tf.cast(out["input_mask"], tf.float32)
            scalars["disc_loss"] = out["disc_loss"]
            scalars["disc_accuracy"] = _weighted_accuracy(
                out["disc_labels"], out["disc_preds"], mask
            )
            scalars["sampled_masked_lm_accuracy"] = _weighted_accuracy(
                out["masked_lm_ids"], out["sampled_ids"], w
            )
        if "cloze_loss" in out:  # the two-tower generator's training loss
            scalars["cloze_loss"] = out["cloze_loss"]
        return out["loss"], scalars

    @property
    def train_loop(self):
        if self._loop is None:
            config = self.config
            settings = loop.LoopSettings.from_config(
                config, config.model_dir, config.num_train_steps, config.seed
            )
            settings.flops_per_example = (
                config.max_seq_length
                * flops.electra_train_flops_per_token(
                    self.model.discriminator.config,
                    getattr(self.model.generator, "config", None),
                    config.max_seq_length,
                    config.max_predictions_per_seq,
                )
            )
            self._loop = loop.TrainLoop(
                self.strategy,
                self.model,
                self.optimizer,
                self._loss_fn,
                self._dataset_fn(config.train_batch_size, True, config.seed),
                settings,
            )
        return self._loop

    def train(self, stop_at=None):
        """Trains to num_train_steps; `stop_at` ends early at a checkpoint (as if killed there).

        The chief holds the model directory's lock while it trains, and writes the model's
        description files (encoder, config, vocabulary) once it holds it.
        """
        if not distribution.is_chief(self.strategy):
            return self.train_loop.train(stop_at)
        with model_dir_lib.Lock(self.config.model_dir):
            model_dir_lib.check_vocab(
                self.config.model_dir, self.config.vocab_file, self.config.do_lower_case
            )
            self._write_model_description()
            return self.train_loop.train(stop_at)

    def evaluate(self):
        """The reference's nine evaluation metrics over `num_eval_steps` batches of held data."""
        config, strategy = self.config, self.strategy
        if self._loop is None:
            self.train_loop.restore()
        dataset = strategy.distribute_datasets_from_function(
            self._dataset_fn(config.eval_batch_size, False, config.seed)
        )
        collected = collect_eval_outputs(
            config, strategy, dataset, config.num_eval_steps, self.model.compute
        )
        with_discriminator = config.electra_objective or config.electric_objective
        results = _eval_metrics(collected, with_discriminator and config.disc_weight > 0)
        results["global_step"] = int(self.optimizer.iterations.numpy())
        return results

    def write_results(self, results):
        """`results_txt` (the reference's format) and `results_json`, written atomically."""
        if not distribution.is_chief(self.strategy):
            return
        config = self.config
        text = write_results_files(config, results)
        if config.results_pkl:  # the same dict, pickled, as the reference's results_pkl names it
            fileio.write_bytes_atomic(config.results_pkl, pickle.dumps(results))
        logging.info("Evaluation results (%s):\n%s", config.results_txt, text)


def collect_eval_outputs(config, strategy, dataset, num_steps, outputs_fn):
    """Evaluation outputs over the first `num_steps` batches of the distributed `dataset`:
    `outputs_fn(features, seed, training=False)` per replica, each step's seed derived from
    `config.seed` (not the training seeds), as {key: [numpy array per replica and batch]}."""

    @tf.function
    def eval_step(features, step):
        def replica_fn(features):
            return outputs_fn(features, seeds.step_seed(config.seed + 1, step), training=False)

        return strategy.run(replica_fn, args=(features,))

    collected = {}
    for step, features in enumerate(dataset):
        if step >= num_steps:
            break
        outputs = eval_step(features, tf.constant(step, tf.int64))
        for key, value in outputs.items():
            parts = [np.atleast_1d(v.numpy()) for v in strategy.experimental_local_results(value)]
            collected.setdefault(key, []).extend(parts)
    if not collected:
        raise ValueError(
            f"No evaluation batch of {config.eval_batch_size} examples in "
            f"{config.pretrain_tfrecords}."
        )
    return collected


def write_results_files(config, results):
    """`results` to `config.results_txt` (the reference's format) and `config.results_json`,
    atomically; returns the text."""
    text = "".join(
        f"{k}: {v:.4f}\n" if isinstance(v, float) else f"{k}: {v}\n" for k, v in results.items()
    )
    fileio.write_text_atomic(config.results_txt, text)
    fileio.write_json_atomic(config.results_json, results)
    return text


def run_pretraining(config, strategy=None):
    """Trains and/or evaluates as `config` says (what `run_pretraining.py` and the demo run);
    returns the evaluation results, or None without `do_eval`."""
    logging.info("Config:\n%s", config.to_json())
    return train_and_evaluate(Pretrainer(config, strategy), config)


def train_and_evaluate(job, config):
    """What `config.do_train` and `config.do_eval` ask of `job` (a `Pretrainer` or a
    `distiller.Distiller`): training, then evaluation with its results written; returns them
    (None without `do_eval`)."""
    if config.do_train:
        job.train()
    if not config.do_eval:
        return None
    results = job.evaluate()
    job.write_results(results)
    return results


def _weighted_accuracy(labels, preds, weights):
    correct = tf.cast(tf.equal(tf.cast(labels, tf.int32), tf.cast(preds, tf.int32)), tf.float32)
    return tf.reduce_sum(correct * weights) / (tf.reduce_sum(weights) + 1e-6)


def _eval_metrics(collected, with_discriminator):
    """Numpy versions of the reference's `metric_fn` over the collected batches."""
    cat = {
        k: np.concatenate([np.reshape(v, (v.shape[0], -1)) if v.ndim > 1 else v for v in vs])
        for k, vs in collected.items()
    }
    w = cat["masked_lm_weights"].ravel()
    results = {
        "loss": float(np.mean(cat["loss"])),
        "masked_lm_accuracy": _accuracy(cat["masked_lm_ids"], cat["masked_lm_preds"], w),
        "masked_lm_loss": float(np.sum(cat["mlm_nll"].ravel() * w) / max(w.sum(), 1e-6)),
    }
    if "sampled_ids" in cat:
        results["sampled_masked_lm_accuracy"] = _accuracy(
            cat["masked_lm_ids"], cat["sampled_ids"], w
        )
    if with_discriminator:
        mask = cat["input_mask"].ravel().astype(np.float64)
        labels, preds = cat["disc_labels"].ravel(), cat["disc_preds"].ravel()
        # As the reference's metric: the mean over examples of each example's mean token loss
        # (the training objective stays the mean over all real tokens of the batch).
        results["disc_loss"] = float(np.mean(cat["disc_per_example_loss"]))
        # As the reference: AUC over every position, padding counted as label 0 / probability 0.
        auc_labels = labels * mask
        results["disc_auc"] = (
            float(sk_metrics.roc_auc_score(auc_labels, cat["disc_probs"].ravel() * mask))
            if 0 < auc_labels.sum() < auc_labels.size
            else float("nan")
        )
        results["disc_accuracy"] = _accuracy(labels, preds, mask)
        results["disc_precision"] = _accuracy(labels, preds, preds * mask)
        results["disc_recall"] = _accuracy(labels, preds, labels * mask)
    return results


def _accuracy(labels, preds, weights):
    weights = np.asarray(weights, np.float64).ravel()
    correct = (np.asarray(labels).ravel() == np.asarray(preds).ravel()).astype(np.float64)
    return float(np.sum(correct * weights) / max(weights.sum(), 1e-12))
