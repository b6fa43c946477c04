"""Fine-tuning hyperparameters: the reference's `FinetuningConfig`, its names and defaults.

As in google-research/electra `configure_finetuning.py`: pre-trained weights come from
`<data_dir>/models/<model_name>`, task data from `<data_dir>/finetuning_data/<task>/`, results go
to `<data_dir>/models/<model_name>/results/<tasks>_results.txt` and fine-tuned models to
`.../finetuning_models/`. Defaults are applied in the reference's order: the passed hparams, then
single-task defaults (RTE/STS 10 epochs; span QA 512 tokens and 2 epochs; chunking 256 tokens),
then the model size's defaults (the `finetuning` section of its `model_sizes/<size>.json`, e.g.
large: learning rate 5e-5, layer-wise decay 0.9), then debug settings, then the passed hparams
again, which always win.

A model pre-trained by `run_pretraining.py` needs no size hparams: `encoder_config.json` beside
the init checkpoint fixes the encoder's shape (vocab_size and embedding_size included), and its
`pretrain_config.json` (or the `finetune_config.json` of a fine-tuned model) supplies
`model_size` and `do_lower_case` unless they are passed.

Path hparams holding `{task}`, `{trial}` or `{split}` are templates filled per task and trial.
"""

import tensorflow as tf

from electra_tf import fileio
from electra_tf import hparams as hp
from electra_tf.finetuning import tasks as tasks_lib
from electra_tf.modeling import sizes
from electra_tf.training import model_dir as model_dir_lib
from electra_tf.training.distribution import MIXED_PRECISION_POLICIES, STRATEGIES

__all__ = ["FinetuningConfig"]

_DEBUG_SETTINGS = dict(save_checkpoints_steps=1000000, num_trials=1, iterations_per_loop=1)
_DEBUG_SETTINGS.update(train_batch_size=32, num_train_epochs=3.0, log_examples=True)
# Settings a pre-trained model's own config supplies when they are not passed.
_INHERITED = ("model_size", "do_lower_case")


class FinetuningConfig(hp.HParams):
    """Fine-tuning hyperparameters.

    Args:
      model_name: the pre-trained model, `<data_dir>/models/<model_name>`.
      data_dir: folder (any `tf.io.gfile` path) with `finetuning_data/`, `vocab.txt` and `models/`.
      **hparams: overrides; an unknown name raises ValueError naming the closest known one. A key
        equal to one of `task_names` whose value is a dict is that task's JSON spec (moved into
        `task_specs`, see `electra_tf.finetuning.tasks`).
    """

    NULLABLE = ("init_checkpoint", "keep_checkpoint_max")
    FIXED = ("model_name", "data_dir")

    @classmethod
    def from_hparams(cls, values, model_name, data_dir):
        """A config from `--hparams` values, which may be a saved `finetune_config.json`: its
        model_name and data_dir must then be the command's (a contradiction is an error)."""
        values = dict(values)
        for key, given in (("model_name", model_name), ("data_dir", data_dir)):
            if key in values and values.pop(key) != given:
                raise ValueError(
                    f"hparam {key!r} contradicts --{key} {given}: every path derives from it; "
                    f"drop it from --hparams or pass it as --{key}."
                )
        return cls(model_name, data_dir, **values)

    def __init__(self, model_name, data_dir, **hparams):
        hparams = dict(hparams)
        specs = dict(hparams.pop("task_specs", None) or {})
        for name in list(hparams):
            if name in (hparams.get("task_names") or ()) and isinstance(hparams[name], dict):
                specs[name] = hparams.pop(name)
        if specs:
            hparams["task_specs"] = specs

        # general
        self.model_name = model_name
        self.debug = False  # the reference's debug model (3 layers of 144), 100 examples per split
        self.log_examples = False  # log the first featurized train example of each task
        self.num_trials = 1  # train+eval runs with different seeds
        self.do_train = True
        self.do_eval = True
        self.keep_all_models = True  # False keeps only the last trial's fine-tuned models

        # model
        self.model_size = "small"  # a bundled size name or the path of a size JSON file
        self.task_names = ["chunk"]
        # As the reference, every task of task_names trains in one model (one encoder, a head per
        # task, batches mixing the tasks); False trains one model per task.
        self.joint_training = True
        self.model_hparam_overrides = {}  # BERT config keys overriding the size's
        self.embedding_size = None  # hidden size by default
        self.vocab_size = 30522
        self.do_lower_case = True

        # training
        self.learning_rate = 1e-4
        self.weight_decay_rate = 0.01
        self.layerwise_lr_decay = 0.8  # > 0: layer l of L gets lr * decay ** (L + 1 - depth)
        self.num_train_epochs = 3.0
        self.warmup_proportion = 0.1
        self.save_checkpoints_steps = 1000000
        self.iterations_per_loop = 1000
        # Beyond the reference: log progress (rate, ETA; TensorBoard) every this many steps; a host
        # loop ends at each, so a long task shows progress whatever iterations_per_loop is.
        self.log_every_steps = 10
        self.keep_checkpoint_max = 5

        # writing model outputs
        self.write_test_outputs = False  # submission files for the test splits
        self.n_writes_test = 5  # for the first n trials

        # sizing
        self.max_seq_length = 128
        self.train_batch_size = 32
        self.eval_batch_size = 32
        self.predict_batch_size = 32
        self.double_unordered = True  # symmetric pair tasks also train on (b, a)

        # span QA
        self.max_query_length = 64
        self.doc_stride = 128
        self.n_best_size = 20
        self.max_answer_length = 30
        self.answerable_classifier = True  # a no-answer logit from [CLS] (SQuAD 2.0)
        self.answerable_uses_start_logits = True  # ... and the expected start representation
        self.answerable_weight = 0.5
        self.joint_prediction = True  # end conditioned on the start, beam search at prediction
        self.beam_size = 20
        self.qa_na_threshold = -2.75  # null odds above it answer "" (SQuAD 2.0)

        # TPU
        self.use_tpu = False
        self.num_tpu_cores = 1
        self.tpu_job_name = None
        self.tpu_name = None
        self.tpu_zone = None
        self.gcp_project = None

        # locations
        self.data_dir = data_dir
        pretrained_model_dir = fileio.join(data_dir, "models", model_name)
        self.raw_data_dir = fileio.join(data_dir, "finetuning_data", "{task}")
        self.vocab_file = fileio.join(pretrained_model_dir, model_dir_lib.VOCAB)
        if not tf.io.gfile.exists(self.vocab_file):
            self.vocab_file = fileio.join(data_dir, "vocab.txt")
        # A folder (its latest checkpoint) or a checkpoint prefix; None trains from scratch.
        self.init_checkpoint = pretrained_model_dir
        self.model_dir = fileio.join(
            pretrained_model_dir, "finetuning_models", "{task}_model_{trial}"
        )
        tasks_str = ",".join(hparams.get("task_names", self.task_names))
        results_dir = fileio.join(pretrained_model_dir, "results")
        self.results_txt = fileio.join(results_dir, tasks_str + "_results.txt")
        self.results_json = fileio.join(results_dir, tasks_str + "_results.json")
        qa_dir = fileio.join(results_dir, tasks_str + "_qa")
        self.qa_eval_file = fileio.join(qa_dir, "{task}_eval.json")
        self.qa_preds_file = fileio.join(qa_dir, "{task}_preds.json")
        self.qa_na_file = fileio.join(qa_dir, "{task}_null_odds.json")
        self.test_predictions = fileio.join(
            pretrained_model_dir, "test_predictions", "trial_{trial}"
        )

        # ----- switches beyond the reference -----
        # True reproduces the released code's layer-wise decay, one power too many below the head
        # (google-research/electra issue 51); see electra_tf.training.optimization.
        self.layerwise_lr_decay_reference_bug = False
        # Tagging as the reference (google-research/electra finetune/tagging): segment id 1 on
        # every token, whole-word truncation, labels = the tags seen in the task's files (sorted),
        # spans read by its get_span_labels. False: segment id 0, sub-token truncation, "O" plus
        # every tag of every entity type, seqeval's spans. See electra_tf.finetuning.features.
        self.tagging_reference = True
        # True reproduces the reference's truncation test, which charges the sentence's word count
        # in place of the next word's sub-tokens and so cuts long sentences early.
        self.tagging_truncation_reference_bug = False
        self.strategy = "auto"  # auto, tpu, mirrored, multi_worker or cpu
        self.jit_compile = False
        self.mixed_precision = None  # None (float32) or "bfloat16"
        self.seed = 0  # trial t uses seed + t - 1 (initialisation, dropout, shuffling)
        self.task_specs = {}  # {task name: JSON task spec} for tasks that are not built in

        self.update(hparams)
        pretrained = self._pretrained_description()
        self._encoder = pretrained[model_dir_lib.ENCODER_CONFIG]
        saved = (
            pretrained[model_dir_lib.PRETRAIN_CONFIG] or pretrained[model_dir_lib.FINETUNE_CONFIG]
        )
        inherited = {k: v for k, v in (saved or {}).items() if k in _INHERITED and k not in hparams}
        self.update({k: v for k, v in inherited.items() if k == "model_size"})
        self.update(self._task_defaults())
        size = sizes.load_model_size(self.model_size)
        self.update(self.size_defaults(size, "finetuning", ("embedding_size",)))
        self.update(inherited)
        if self._encoder is not None:
            self.update(
                {
                    "vocab_size": self._encoder["vocab_size"],
                    "embedding_size": self._encoder["embedding_size"],
                }
            )
        if self.debug:
            self.update(_DEBUG_SETTINGS)
        self.update(hparams)
        self._validate()

    def _pretrained_description(self):
        """The description files beside the init checkpoint ({file name: None} without one)."""
        if not self.init_checkpoint:
            return {
                name: None
                for name in (
                    model_dir_lib.ENCODER_CONFIG,
                    model_dir_lib.PRETRAIN_CONFIG,
                    model_dir_lib.FINETUNE_CONFIG,
                )
            }
        return model_dir_lib.describe(self.init_checkpoint)

    def task_kind(self, name):
        """A task's kind from its spec, its folder's task.json or the registry (None if unknown)."""
        tasks_lib.check_task_name(name)
        spec = self.task_specs.get(name)
        if spec is None:
            spec = fileio.read_json(
                fileio.join(self.raw_data_dir.format(task=name), "task.json"), missing_ok=True
            )
        if isinstance(spec, dict):
            return spec.get("kind")
        task = tasks_lib.BUILTIN_TASKS.get(name)
        return task.kind if task else None

    def _task_defaults(self):
        """The reference's defaults for single-task models (span QA: every span_qa task)."""
        if len(self.task_names) != 1:
            return {}
        name = self.task_names[0]
        if name in ("rte", "sts"):
            return {"num_train_epochs": 10.0}
        if self.task_kind(name) == "span_qa":  # from the task's kind, never from its name
            return {"max_seq_length": 512, "num_train_epochs": 2.0, "write_test_outputs": False}
        if name == "chunk":
            return {"max_seq_length": 256}
        return {"num_train_epochs": 3.0}

    def _validate(self):
        self.check_choice("strategy", STRATEGIES)
        self.check_choice("mixed_precision", MIXED_PRECISION_POLICIES)
        hp.refuse_unused_tpu_keys(self)
        self.check_positive(
            "learning_rate",
            "num_train_epochs",
            "iterations_per_loop",
            "save_checkpoints_steps",
            "max_seq_length",
            "train_batch_size",
            "eval_batch_size",
            "predict_batch_size",
            "num_trials",
            "vocab_size",
            "log_every_steps",
        )
        if self.tagging_truncation_reference_bug and not self.tagging_reference:
            raise ValueError(
                "tagging_truncation_reference_bug reproduces the reference's tagging truncation; "
                "it needs tagging_reference true."
            )
        if not self.task_names:
            raise ValueError("task_names must be a non-empty list of task names")
        for name in self.task_names:
            tasks_lib.check_task_name(name)
        if not all(isinstance(s, dict) for s in self.task_specs.values()):
            raise ValueError("task_specs must map task names to JSON task specs (objects)")
        self.check_encoder_overrides(sizes.ENCODER_KEYS)
        if self._encoder is not None:
            for key in ("vocab_size", "embedding_size"):
                if getattr(self, key) != self._encoder[key]:
                    raise ValueError(
                        f"{key}={getattr(self, key)} contradicts the pre-trained model's "
                        f"{model_dir_lib.ENCODER_CONFIG} beside {self.init_checkpoint} "
                        f"({key} {self._encoder[key]}); leave {key} out, the pre-trained model "
                        "fixes it."
                    )

    def model_hparams(self):
        """Encoder hyperparameters (EncoderConfig keys).

        The pre-trained model's `encoder_config.json` when the init checkpoint has one, else
        resolved from model_size, vocab_size, embedding_size and the overrides as in the reference;
        `model_hparam_overrides` apply in both cases (dropout, say). Debug mode shrinks the
        transformer to 3 layers of hidden size 144 with 4 heads, as the reference does.
        """
        if self._encoder is not None:
            args = dict(self._encoder)
            args.update(self.model_hparam_overrides)
        else:
            args = sizes.resolve_encoder_hparams(
                self.model_size,
                vocab_size=self.vocab_size,
                overrides=self.model_hparam_overrides,
                embedding_size=self.model_hparam_overrides.get(
                    "embedding_size", self.embedding_size
                ),
            )
        if self.debug:
            args.update(sizes.DEBUG_MODEL)
        return args
