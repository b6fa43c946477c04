"""Fine-tuning end to end: data, model, pre-trained weights, training, evaluation, results.

For every trial: seed `seed + trial - 1`, build the encoder and a head per task, load the
encoder's weights from `init_checkpoint` by variable name (a `run_pretraining.py` checkpoint needs
no conversion), train `ceil(num_train_epochs * n_train / train_batch_size)` steps with the
reference's AdamW and layer-wise learning-rate decay, checkpoint into `model_dir`
(`.../finetuning_models/<tasks>_model_<trial>`), score every task's eval split with its metrics,
and write every trial's scores with a mean/median/std/min/max summary to `results_txt` and
`results_json`.

As the reference, the tasks of `task_names` train jointly (`joint_training`, the default): one
model, one encoder and a head per task, on shuffled batches that mix every task's training
examples, each example's loss from its own task's head; the model dir is named after all tasks
("mrpc,sst_model_1"). `joint_training: false` trains one model per task instead.

The loss of a batch is the sum of its examples' losses, as the reference (whose TPU optimizer then
averages over cores, as the replicas are averaged here). Re-running a killed run resumes each
trial from its last checkpoint when the training hyperparameters are unchanged, and starts that
trial over otherwise.
"""

import collections
import dataclasses
import hashlib
import json
import math

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf import fileio, tokenization
from electra_tf.data.pretraining_data import file_sha256
from electra_tf.finetuning import features as features_lib
from electra_tf.finetuning import metrics, qa
from electra_tf.finetuning import tasks as tasks_lib
from electra_tf.finetuning.model import build_finetuning_model, build_multitask_model, label_keys
from electra_tf.modeling import flops, networks
from electra_tf.training import distribution, loop, optimization
from electra_tf.training import model_dir as model_dir_lib

__all__ = [
    "FinetuningRunner",
    "run_finetuning",
    "summarize",
    "task_info",
    "write_results",
]

_INPUT_KEYS = ("input_ids", "input_mask", "segment_ids")
# Hyperparameters that determine the trained weights: a checkpoint made with other values is not
# resumed.
_TRAINING_KEYS = (
    "learning_rate",
    "weight_decay_rate",
    "layerwise_lr_decay",
    "layerwise_lr_decay_reference_bug",
    "tagging_reference",
    "tagging_truncation_reference_bug",
    "num_train_epochs",
    "warmup_proportion",
    "train_batch_size",
    "max_seq_length",
    "max_query_length",
    "doc_stride",
    "double_unordered",
    "answerable_classifier",
    "answerable_uses_start_logits",
    "answerable_weight",
    "joint_prediction",
    "init_checkpoint",
    "model_size",
    "model_hparam_overrides",
    "do_lower_case",
    "vocab_file",
    "seed",
    "mixed_precision",
    "task_specs",
    "debug",
)
# GLUE submission file names (the benchmark's test server expects them).
_GLUE_FILES = {
    "cola": "CoLA",
    "sst": "SST-2",
    "mrpc": "MRPC",
    "sts": "STS-B",
    "qqp": "QQP",
    "qnli": "QNLI",
    "rte": "RTE",
    "wnli": "WNLI",
    ("mnli", "test"): "MNLI-m",
    ("mnli", "test_mismatched"): "MNLI-mm",
    ("mnli", "diagnostic"): "AX",
}
# CLUE submission files are <name>_predict.json.
_CLUE_NAMES = {
    "afqmc": "afqmc",
    "tnews": "tnews",
    "iflytek": "iflytek",
    "cmnli": "cmnli",
    "ocnli": "ocnli_50k",
    "wsc": "cluewsc2020",
    "csl": "csl",
    "cmrc2018": "cmrc2018",
}


# ----- model description ------------------------------------------------------------------------


def task_info(task, config, arrays):
    """What serving and export need to know about a fine-tuned model beyond its weights: the
    task's kind, labels, target range, whether it reads text pairs, and the input settings (a
    joint model's task_info.json holds one per task under "tasks", see `joint_task_info`)."""
    return {
        "task": task.name,
        "kind": task.kind,
        "label_list": task.label_list,
        "regression_range": task.regression_range,
        "text_pairs": bool(np.any(arrays["segment_ids"])),
        "max_seq_length": config.max_seq_length,
        "do_lower_case": config.do_lower_case,
        "vocab_file": config.vocab_file,
    }


def joint_task_info(infos, config):
    """task_info.json of a jointly trained model: {task name: `task_info`} under "tasks"."""
    return {
        "task": ",".join(infos),
        "kind": "multi_task",
        "tasks": infos,
        "max_seq_length": config.max_seq_length,
        "do_lower_case": config.do_lower_case,
        "vocab_file": config.vocab_file,
    }


# ----- data -------------------------------------------------------------------------------------


@dataclasses.dataclass
class SplitData:
    """One split's examples and model arrays (one row per feature; QA windows keep qa_features)."""

    examples: list
    arrays: dict
    qa_features: qa.QAFeatures = None


def _train_dataset_fn(arrays, batch_size, seed):
    """Shuffled, repeated batches; the shuffle buffer holds row indices, so checkpoints stay small."""
    n = len(arrays["input_ids"])

    def dataset_fn(input_context):
        tensors = {k: tf.constant(v) for k, v in arrays.items()}
        rows = (
            tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
        )
        if input_context.num_input_pipelines > 1:
            rows = rows.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        per_replica = input_context.get_per_replica_batch_size(batch_size)
        return (
            rows.batch(per_replica, drop_remainder=True)
            .map(lambda index: {k: tf.gather(t, index) for k, t in tensors.items()})
            .prefetch(2)
        )

    return dataset_fn


def joint_arrays(tasks, arrays):
    """The training rows of several tasks as one set of arrays for `MultiTaskModel`: the encoder
    inputs of every row, "task_id" (the row's task), and each task's label arrays under
    `<task>/<key>`, zero in the other tasks' rows."""
    counts = [len(a["input_ids"]) for a in arrays]
    joint = {k: np.concatenate([a[k] for a in arrays]) for k in _INPUT_KEYS}
    joint["task_id"] = np.repeat(np.arange(len(tasks), dtype=np.int32), counts)
    for index, (task, own) in enumerate(zip(tasks, arrays)):
        for key in label_keys(task.kind):
            value = own[key]
            joint[f"{task.name}/{key}"] = np.concatenate(
                [
                    value if i == index else np.zeros((n,) + value.shape[1:], value.dtype)
                    for i, n in enumerate(counts)
                ]
            )
    return joint


# ----- results ----------------------------------------------------------------------------------


def summarize(results):
    """{task: {metric: {mean, median, std, min, max}}} over trials (std with ddof=1; 0 for one)."""
    values = collections.defaultdict(lambda: collections.defaultdict(list))
    for trial in results:
        for task, scores in trial.items():
            for metric, value in scores.items():
                values[task][metric].append(float(value))
    return {
        task: {
            metric: {
                "mean": float(np.mean(v)),
                "median": float(np.median(v)),
                "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                "min": float(np.min(v)),
                "max": float(np.max(v)),
            }
            for metric, v in by_metric.items()
        }
        for task, by_metric in values.items()
    }


def write_results(config, results):
    """Every trial's scores and their summary to results_txt and results_json (atomically)."""
    lines = []
    for trial, trial_results in enumerate(results, 1):
        for task, scores in trial_results.items():
            lines.append(
                f"{task} (trial {trial}): " + " - ".join(f"{k}: {v:.2f}" for k, v in scores.items())
            )
    summary = summarize(results)
    for task, by_metric in summary.items():
        for metric, s in by_metric.items():
            lines.append(
                f"{task} {metric} over {len(results)} trial(s): "
                + " - ".join(f"{k} {s[k]:.2f}" for k in ("mean", "median", "std", "min", "max"))
            )
    text = "\n".join(lines) + "\n"
    fileio.write_text_atomic(config.results_txt, text)
    fileio.write_json_atomic(config.results_json, {"trials": results, "summary": summary})
    logging.info("Results (%s):\n%s", config.results_txt, text)


# ----- the runner -------------------------------------------------------------------------------


class FinetuningRunner:
    """Everything run_finetuning.py does, as an object tests and benchmarks can drive."""

    def __init__(self, config, strategy=None):
        self.config = config
        self.strategy = distribution.strategy_for(
            config, strategy, ("train_batch_size", "eval_batch_size", "predict_batch_size")
        )
        self.is_chief = distribution.is_chief(self.strategy)
        self.encoder_config = networks.encoder_config_from_dict(config.model_hparams())
        if config.max_seq_length > self.encoder_config.max_position_embeddings:
            raise ValueError(
                f"max_seq_length {config.max_seq_length} exceeds the encoder's "
                f"max_position_embeddings {self.encoder_config.max_position_embeddings}"
            )
        self.tokenizer = tokenization.FullTokenizer(config.vocab_file, config.do_lower_case)
        if self.tokenizer.vocab_size > self.encoder_config.vocab_size:
            raise ValueError(
                f"Vocabulary {config.vocab_file} has {self.tokenizer.vocab_size} tokens "
                f"but the encoder only {self.encoder_config.vocab_size} embeddings"
            )
        self.tasks = [
            dataclasses.replace(
                tasks_lib.get_task(
                    name,
                    raw_dir=config.raw_data_dir.format(task=name),
                    spec=config.task_specs.get(name),
                ),
                tagging_reference=config.tagging_reference,
                tagging_truncation_bug=config.tagging_truncation_reference_bug,
            )
            for name in config.task_names
        ]
        self._data = {}
        self._validate_inputs()

    def _validate_inputs(self):
        """Checks everything a run reads before anything is written or deleted: the init
        checkpoint, the vocabulary against the pre-trained model's, and every split the run will
        use (present, non-empty, labels known), featurized once and cached."""
        config = self.config
        if config.init_checkpoint:
            try:
                model_dir_lib.resolve_checkpoint(config.init_checkpoint)
            except FileNotFoundError as e:
                raise FileNotFoundError(
                    f"{e} Pre-train with run_pretraining.py, point init_checkpoint at a "
                    "checkpoint, or set it to null to fine-tune from random weights."
                ) from None
            model_dir_lib.check_vocab(
                model_dir_lib.checkpoint_dir(config.init_checkpoint),
                config.vocab_file,
                config.do_lower_case,
            )
        for task in self.tasks:
            if config.do_train:
                self.split(task, "train", is_training=True)
            if config.do_eval:
                self.split(task, task.eval_split)
            if config.write_test_outputs:
                for split in self._test_splits(task):
                    self.split(task, split)

    def units(self):
        """The groups of tasks that share one model: all tasks (joint training), else each alone."""
        if self.config.joint_training:
            return [self.tasks]
        return [[task] for task in self.tasks]

    def unit_dir(self, tasks, trial):
        """The model dir of a group of tasks trained together."""
        return self.config.model_dir.format(task=",".join(t.name for t in tasks), trial=trial)

    def run(self):
        """All trials of all tasks; returns [{task: {metric: value}}] per trial."""
        config = self.config
        logging.info("Fine-tuning config:\n%s", config.to_json())
        results = []
        for trial in range(1, config.num_trials + 1):
            trial_results = {}
            for tasks in self.units():
                logging.info(
                    "=== %s: model %s, trial %d/%d ===",
                    ", ".join(t.name for t in tasks),
                    config.model_name,
                    trial,
                    config.num_trials,
                )
                trial_results.update(self.run_tasks(tasks, trial))
                model_dir = self.unit_dir(tasks, trial)
                if (
                    trial != config.num_trials
                    and not config.keep_all_models
                    and self.is_chief
                    and tf.io.gfile.exists(model_dir)
                ):
                    tf.io.gfile.rmtree(model_dir)
            if config.do_eval:
                results.append(trial_results)
                if self.is_chief:
                    write_results(config, results)
        return results

    def split(self, task, split, is_training=False):
        """A split's examples and features (cached)."""
        key = (task.name, split, is_training)
        if key not in self._data:
            config = self.config
            examples = task.get_examples(
                split, double_unordered=is_training and config.double_unordered
            )
            if config.debug:
                examples = examples[:100]
            if not examples:
                raise ValueError(f"Task {task.name} has no {split} examples in {task.path(split)}")
            feats = features_lib.featurize(
                task,
                examples,
                self.tokenizer,
                config.max_seq_length,
                config.doc_stride,
                config.max_query_length,
            )
            qa_features = feats if task.kind == "span_qa" else None
            arrays = qa_features.arrays if qa_features else feats
            arrays = {k: arrays[k] for k in _INPUT_KEYS + label_keys(task.kind)}
            if config.log_examples and is_training:
                logging.info(
                    "%s example 0: %s",
                    task.name,
                    " ".join(
                        self.tokenizer.convert_ids_to_tokens(
                            [int(i) for i in arrays["input_ids"][0] if i]
                        )
                    ),
                )
            logging.info(
                "%s/%s: %d examples, %d features",
                task.name,
                split,
                len(examples),
                len(arrays["input_ids"]),
            )
            self._data[key] = SplitData(examples, arrays, qa_features)
        return self._data[key]

    def build(self, tasks, trial, num_train_steps):
        """A fresh model (one task: `FinetuningModel`; several: `MultiTaskModel`) and optimizer
        for one trial (seeded), under the strategy's scope."""
        config = self.config
        keras.backend.clear_session()  # fresh layer names and memory for every model
        distribution.set_precision_policy(config.mixed_precision)
        keras.utils.set_random_seed(config.seed + trial - 1)
        with self.strategy.scope():
            if len(tasks) == 1:
                model = build_finetuning_model(self.encoder_config, tasks[0], config)
            else:
                model = build_multitask_model(self.encoder_config, tasks, config)
            model.build_all(config.max_seq_length)
            optimizer = optimization.create_optimizer(
                config.learning_rate,
                num_train_steps,
                weight_decay_rate=config.weight_decay_rate,
                warmup_proportion=config.warmup_proportion,
                layerwise_lr_decay_power=config.layerwise_lr_decay,
                n_transformer_layers=self.encoder_config.num_hidden_layers,
                layerwise_lr_decay_reference_bug=config.layerwise_lr_decay_reference_bug,
            )
            optimizer.build(model.trainable_variables)
        return model, optimizer

    def train_arrays(self, tasks):
        """The training rows of one model: a task's features, or several tasks' joined."""
        arrays = [self.split(task, "train", is_training=True).arrays for task in tasks]
        return arrays[0] if len(tasks) == 1 else joint_arrays(tasks, arrays)

    def run_tasks(self, tasks, trial):
        """Trains (or loads) one model for a group of tasks; returns {task: scores} of the tasks
        it evaluates (none without do_eval)."""
        config = self.config
        num_train_steps = 1
        if config.do_train:
            arrays = self.train_arrays(tasks)
            num_train_steps = max(
                1,
                math.ceil(
                    config.num_train_epochs * len(arrays["input_ids"]) / config.train_batch_size
                ),
            )
        model, optimizer = self.build(tasks, trial, num_train_steps)
        if config.do_train:
            self.train(tasks, trial, model, optimizer, arrays, num_train_steps)
        elif config.init_checkpoint:
            logging.info(
                "Loading the whole model from %s",
                model_dir_lib.restore_variables(model.trainable_variables, config.init_checkpoint),
            )
        scores = {}
        for task in tasks:
            view = model if len(tasks) == 1 else model.for_task(task.name)
            predict = self.predictor(view, task.kind)
            if config.do_eval:
                scores[task.name] = self.evaluate(task, predict)
            if config.write_test_outputs and trial <= config.n_writes_test:
                self.write_test_outputs(task, trial, predict)
        return scores

    def train(self, tasks, trial, model, optimizer, arrays, num_train_steps):
        """Trains with the shared TrainLoop, resuming the trial's checkpoint when it is compatible.

        The chief holds `<model_dir>.lock` meanwhile. A model trained on other data or settings is
        moved aside to `<model_dir>.replaced` and deleted only once the new one is saved.
        """
        model_dir = self.unit_dir(tasks, trial)
        if not self.is_chief:
            self.train_loop(tasks, trial, model, optimizer, arrays, num_train_steps).train()
            return
        with model_dir_lib.Lock(model_dir, lock_file=f"{model_dir.rstrip('/')}.lock"):
            self.train_loop(tasks, trial, model, optimizer, arrays, num_train_steps).train()
            replaced = _replaced(model_dir)
            if tf.io.gfile.exists(replaced):
                tf.io.gfile.rmtree(replaced)

    def model_task_info(self, tasks):
        """task_info.json of a model trained on `tasks`, with their fingerprints."""
        infos = {}
        for task in tasks:
            arrays = self.split(task, "train", is_training=True).arrays
            infos[task.name] = dict(
                task_info(task, self.config, arrays), fingerprint=self.fingerprint(task)
            )
        if len(tasks) == 1:
            return infos[tasks[0].name]
        return joint_task_info(infos, self.config)

    def train_loop(self, tasks, trial, model, optimizer, arrays, num_train_steps):
        """The trial's TrainLoop, its model initialised from init_checkpoint unless the trial's own
        compatible checkpoint will be resumed."""
        config = self.config
        model_dir = self.unit_dir(tasks, trial)
        self._prepare_model_dir(model_dir, tasks)
        if tf.train.latest_checkpoint(model_dir) is None and config.init_checkpoint:
            encoder_variables = model.encoder.trainable_variables
            logging.info(
                "Loading %d encoder variables from %s",
                len(encoder_variables),
                model_dir_lib.restore_variables(encoder_variables, config.init_checkpoint),
            )
        if self.is_chief:
            model_dir_lib.write(
                model_dir,
                model_dir_lib.ENCODER_CONFIG,
                networks.encoder_config_to_dict(self.encoder_config),
            )
            model_dir_lib.write(model_dir, model_dir_lib.FINETUNE_CONFIG, config.to_dict())
            model_dir_lib.write(model_dir, model_dir_lib.TASK_INFO, self.model_task_info(tasks))
            vocab = model_dir_lib.vocab_info(config.vocab_file, config.do_lower_case)
            model_dir_lib.write(model_dir, model_dir_lib.VOCAB_INFO, vocab)
        seed = config.seed + trial - 1

        def loss_fn(features, step_seed, training):
            del step_seed  # dropout draws from the layers' seeded, checkpointed generators
            losses, _ = model.compute(features, training)
            return tf.reduce_sum(losses), {"loss_per_example": tf.reduce_mean(losses)}

        settings = loop.LoopSettings.from_config(config, model_dir, num_train_steps, seed)
        settings.flops_per_example = flops.finetuning_train_flops_per_example(
            self.encoder_config, config.max_seq_length
        )
        logging.info(
            "Training %s for %d steps (%.1f epochs of %d features)",
            ", ".join(t.name for t in tasks),
            num_train_steps,
            config.num_train_epochs,
            len(arrays["input_ids"]),
        )
        return loop.TrainLoop(
            self.strategy,
            model,
            optimizer,
            loss_fn,
            _train_dataset_fn(arrays, config.train_batch_size, seed),
            settings,
        )

    def fingerprint(self, task):
        """What the trained weights depend on besides the hyperparameters: the task's spec (kind,
        labels, format, fields) and the SHA-256 of its training file."""
        spec = {
            "kind": task.kind,
            "labels": task.label_list,
            "regression_range": task.regression_range,
            "format": task.format,
            "files": {name: [f.file, f.header, f.keyed] for name, f in sorted(task.splits.items())},
            "json_spec": self.config.task_specs.get(task.name)
            or fileio.read_json(fileio.join(task.raw_dir, "task.json"), missing_ok=True),
        }
        return {
            "task_spec": hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest(),
            "train_data": file_sha256(task.path("train")),
        }

    def _prepare_model_dir(self, model_dir, tasks):
        """Starts the trial over when its checkpoint was trained with other hyperparameters, task
        specs or training data: the old model is moved aside, never deleted before the new one is
        saved."""
        if tf.train.latest_checkpoint(model_dir) is None:
            return
        saved = model_dir_lib.read(model_dir, model_dir_lib.FINETUNE_CONFIG) or {}
        current = self.config.to_dict()
        changed = [k for k in _TRAINING_KEYS if saved.get(k) != current.get(k)]
        info = model_dir_lib.read(model_dir, model_dir_lib.TASK_INFO) or {}
        saved_infos = info.get("tasks") or {info.get("task"): info}
        for task in tasks:
            now = self.fingerprint(task)
            was = (saved_infos.get(task.name) or {}).get("fingerprint", {})
            if was.get("task_spec") != now["task_spec"]:
                changed.append(f"task spec of {task.name}")
            if was.get("train_data") != now["train_data"]:
                changed.append(f"training data ({task.path('train')})")
        if not changed:
            logging.info("Resuming from the checkpoint in %s", model_dir)
            return
        replaced = _replaced(model_dir)
        logging.warning(
            "The model in %s was trained with other %s; training this trial again (the old "
            "model stays in %s until the new one is saved).",
            model_dir,
            ", ".join(changed),
            replaced,
        )
        if self.is_chief:
            if tf.io.gfile.exists(replaced):
                tf.io.gfile.rmtree(replaced)
            tf.io.gfile.rename(model_dir, replaced)

    def predictor(self, model, kind):
        """`predict(arrays, batch_size)` -> the model's outputs (numpy, in row order) and
        per-example "losses" for every row.

        Every batch has `batch_size` rows (the last one is filled with its last row), so the step
        is traced once per width. With one replica, batches are fed as tensors to one
        `tf.function` (XLA-compiled when the config's `jit_compile` asks); for sentence and
        tagging tasks each batch is cut to its longest row rounded up to a power of two (at least
        16), which padding cannot change (attention ignores it, positions start at 0), so short
        texts cost what they hold (tagging predictions are 0 on padding). Several replicas go
        through the strategy's distributed dataset.
        """
        strategy = self.strategy
        keys = _INPUT_KEYS + label_keys(kind)
        max_length = self.config.max_seq_length

        def replica_fn(batch):
            losses, outputs = model.compute(batch, training=False)
            return dict(outputs, losses=losses)

        if strategy.num_replicas_in_sync > 1:
            return self._distributed_predictor(replica_fn, keys)
        forward = tf.function(replica_fn, jit_compile=bool(self.config.jit_compile))
        trim = kind != "span_qa"  # span QA windows are full-length and its beam reads every slot

        def predict(arrays, batch_size):
            n = len(arrays["input_ids"])
            lengths = np.asarray(arrays["input_mask"]).sum(-1)
            collected = collections.defaultdict(list)
            for start in range(0, n, batch_size):
                take = np.minimum(np.arange(start, start + batch_size), n - 1)
                width = max_length
                if trim:
                    width = min(max_length, max(16, 1 << int(lengths[take].max() - 1).bit_length()))
                batch = {}
                for k in keys:
                    v = arrays[k][take]
                    batch[k] = v[:, :width] if v.ndim > 1 else v
                outputs = forward(batch)
                for k, v in outputs.items():
                    v = v.numpy()
                    if kind == "tagging" and k == "predictions":  # padding's tags: 0
                        v = np.pad(v * batch["input_mask"], [(0, 0), (0, max_length - width)])
                    collected[k].append(v)
            return {k: np.concatenate(v)[:n] for k, v in collected.items()}

        return predict

    def _distributed_predictor(self, replica_fn, keys):
        """The predictor over several replicas: full-length batches through the distributed
        dataset, outputs gathered and put back in row order."""
        strategy = self.strategy

        def with_row(batch):
            return dict(replica_fn(batch), row=batch["row"])

        @tf.function
        def step(batch):
            outputs = strategy.run(with_row, args=(batch,))
            return {k: strategy.gather(v, axis=0) for k, v in outputs.items()}

        def predict(arrays, batch_size):
            n = len(arrays["input_ids"])
            padded = -(-n // batch_size) * batch_size
            take = np.minimum(
                np.arange(padded), n - 1
            )  # the last batch is filled with the last row
            inputs = {k: arrays[k][take] for k in keys}
            inputs["row"] = np.where(np.arange(padded) < n, np.arange(padded), -1).astype(np.int32)
            dataset = strategy.experimental_distribute_dataset(
                tf.data.Dataset.from_tensor_slices(inputs).batch(batch_size)
            )
            collected = collections.defaultdict(list)
            for batch in dataset:
                for k, v in step(batch).items():
                    collected[k].append(v.numpy())
            cat = {k: np.concatenate(v) for k, v in collected.items()}
            rows = cat.pop("row")
            keep = rows >= 0
            out = {}
            for k, v in cat.items():
                out[k] = np.empty((n,) + v.shape[1:], v.dtype)
                out[k][rows[keep]] = v[keep]
            return out

        return predict

    def evaluate(self, task, predict):
        """The task's metrics (and mean per-example loss) on its eval split."""
        config = self.config
        data = self.split(task, task.eval_split)
        outputs = predict(data.arrays, config.eval_batch_size)
        if task.kind == "span_qa":
            scores = self._qa_scores(task, data, outputs)
        elif task.kind == "tagging":
            predicted = self._tags(task, data, outputs)
            reference = task.tagging_reference
            gold = [  # the labels as trained, for the words the truncation kept
                features_lib.encode_tags(ex.tags, task.tag_scheme, reference)[: len(tags)]
                for ex, tags in zip(data.examples, predicted)
            ]
            scores = metrics.entity_f1(gold, predicted, reference)
        else:
            gold = data.arrays["label_ids" if task.kind == "classification" else "targets"]
            predictions = outputs["predictions"]
            if task.kind == "regression":  # scores in the task's units (targets train in [0, 1])
                low, high = task.regression_range
                gold, predictions = (
                    np.asarray(v) * (high - low) + low for v in (gold, predictions)
                )
            scores = metrics.sentence_scores(task.metrics, gold, predictions)
        scores["loss"] = float(np.mean(outputs["losses"]))
        logging.info(
            "%s %s: %s",
            task.name,
            task.eval_split,
            " - ".join(f"{k}: {v:.2f}" for k, v in scores.items()),
        )
        return scores

    def _decode_qa(self, task, data, outputs):
        config = self.config
        return qa.postprocess_qa(
            data.examples,
            data.qa_features,
            outputs,
            config.n_best_size,
            config.max_answer_length,
            task.version_2,
            config.qa_na_threshold,
        )

    def _qa_scores(self, task, data, outputs):
        """Official scores of the task's QA metrics; also writes the reference's preds, null-odds and
        eval files."""
        config = self.config
        decoded = self._decode_qa(task, data, outputs)
        gold = {ex.qas_id: ex.answers for ex in data.examples}
        scores = {}
        for name in task.metrics:
            # SQuAD 2.0 is scored as the reference does: best non-null spans plus null odds.
            predictions = decoded.best_non_null if name == "squad_v2" else decoded.predictions
            scores.update(
                metrics.qa_scores(
                    name, gold, predictions, decoded.null_odds or None, config.qa_na_threshold
                )
            )
        if self.is_chief:  # as the reference: SQuAD 2.0 answers un-thresholded, with null odds
            fileio.write_json_atomic(
                config.qa_preds_file.format(task=task.name),
                decoded.best_non_null if task.version_2 else decoded.predictions,
            )
            if task.version_2:
                fileio.write_json_atomic(
                    config.qa_na_file.format(task=task.name), decoded.null_odds
                )
            fileio.write_json_atomic(config.qa_eval_file.format(task=task.name), scores)
        return scores

    def _tags(self, task, data, outputs):
        """Predicted tags per word (words cut by max_seq_length have none)."""
        labels = task.label_list
        return [
            [labels[i] for i in ids]
            for ids in features_lib.word_values(
                outputs["predictions"], data.arrays["label_weights"]
            )
        ]

    def write_test_outputs(self, task, trial, predict):
        """Submission files for the task's test splits in `test_predictions` (trial folder): GLUE
        TSVs, CLUE JSON lines, {question id: answer} JSON for span QA, index/prediction TSVs else."""
        config = self.config
        out_dir = config.test_predictions.format(trial=trial)
        for split in self._test_splits(task):
            data = self.split(task, split)
            outputs = predict(data.arrays, config.predict_batch_size)
            name, text = self._submission(task, split, data, outputs)
            if self.is_chief:
                fileio.write_text_atomic(f"{out_dir}/{name}", text)
                logging.info(
                    "Wrote %s predictions for %s/%s to %s/%s",
                    len(data.examples),
                    task.name,
                    split,
                    out_dir,
                    name,
                )

    @staticmethod
    def _test_splits(task):
        return [s for s in task.existing_splits() if "test" in s or s == "diagnostic"]

    def _submission(self, task, split, data, outputs):
        """(file name, file text) of one test split's predictions."""
        clue = _CLUE_NAMES.get(task.name)
        if task.kind == "span_qa":
            answers = self._decode_qa(task, data, outputs).predictions
            name = f"{clue}_predict.json" if clue else f"{task.name}_{split}_predictions.json"
            return name, json.dumps(answers, ensure_ascii=False, indent=2) + "\n"
        eids = [ex.eid for ex in data.examples]
        if task.kind == "tagging":
            values = [" ".join(tags) for tags in self._tags(task, data, outputs)]
        elif task.kind == "regression":
            low, high = task.regression_range
            values = [
                f"{v:.3f}" for v in np.clip(outputs["predictions"] * (high - low) + low, low, high)
            ]
        else:
            values = [task.label_list[i] for i in outputs["predictions"]]
        if clue:
            return f"{clue}_predict.json", "".join(
                json.dumps({"id": eid, "label": v}, ensure_ascii=False) + "\n"
                for eid, v in zip(eids, values)
            )
        glue = _GLUE_FILES.get((task.name, split), _GLUE_FILES.get(task.name))
        name = f"{glue}.tsv" if glue else f"{task.name}_{split}.tsv"
        return name, "index\tprediction\n" + "".join(f"{e}\t{v}\n" for e, v in zip(eids, values))


def _replaced(model_dir):
    """Where a model is kept while its replacement trains."""
    return f"{model_dir.rstrip('/')}.replaced"


def run_finetuning(config, strategy=None):
    """Runs what the config asks (train and/or evaluate every task, num_trials times); returns the
    per-trial scores."""
    return FinetuningRunner(config, strategy).run()
