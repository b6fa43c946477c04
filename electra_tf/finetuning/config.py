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

import json

import tensorflow as tf

from electra_tf import hparams as hp
from electra_tf.finetuning import tasks as tasks_lib
from electra_tf.pretraining.config import MIXED_PRECISION_POLICIES, STRATEGIES
from electra_tf.pretraining.trainer import ENCODER_CONFIG

__all__ = [
    "FinetuningConfig",
    "FINETUNE_CONFIG",
    "PRETRAIN_CONFIG",
    "TASK_INFO",
    "checkpoint_dir",
    "read_json",
]

PRETRAIN_CONFIG = "pretrain_config.json"  # written by run_pretraining.py
FINETUNE_CONFIG = "finetune_config.json"  # written beside every fine-tuned model
TASK_INFO = "task_info.json"  # the task's kind, labels and inputs, beside every fine-tuned model

# The reference's run_finetuning shrinks the transformer in debug mode.
_DEBUG_MODEL = {
    "num_hidden_layers": 3,
    "hidden_size": 144,
    "intermediate_size": 144 * 4,
    "num_attention_heads": 4,
}
_DEBUG_SETTINGS = {
    "save_checkpoints_steps": 1000000,
    "num_trials": 1,
    "iterations_per_loop": 1,
    "train_batch_size": 32,
    "num_train_epochs": 3.0,
    "log_examples": True,
}
# Settings a pre-trained model's own config supplies when they are not passed.
_INHERITED = ("model_size", "do_lower_case")


def checkpoint_dir(path):
    """The folder of a checkpoint given as a folder or as a `ckpt-N` prefix (any gfile path)."""
    if tf.io.gfile.exists(path + ".index"):  # first: ram:// calls any name prefix a folder
        return path.rsplit("/", 1)[0]
    return path


def read_json(path):
    """A JSON file's value, or None when the file does not exist (any gfile path)."""
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "r") as f:
        return json.loads(f.read())


class FinetuningConfig(hp.HParams):
    """Fine-tuning hyperparameters.

    Args:
      model_name: the pre-trained model, `<data_dir>/models/<model_name>`.
      data_dir: folder (any `tf.io.gfile` path) with `finetuning_data/`, `vocab.txt` and `models/`.
      **hparams: overrides; an unknown name raises ValueError naming the closest known one. A key
        equal to one of `task_names` whose value is a dict is that task's JSON spec (moved into
        `task_specs`, see `electra_tf.finetuning.tasks`).
    """

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
        self.debug = False  # tiny model, 100 examples per split, random initialisation
        self.log_examples = False  # log the first featurized train example of each task
        self.num_trials = 1  # train+eval runs with different seeds
        self.do_train = True
        self.do_eval = True
        self.keep_all_models = True  # False keeps only the last trial's fine-tuned models

        # model
        self.model_size = "small"  # a bundled size name or the path of a size JSON file
        self.task_names = ["chunk"]
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
        pretrained_model_dir = hp.gfile_join(data_dir, "models", model_name)
        self.raw_data_dir = hp.gfile_join(data_dir, "finetuning_data", "{task}")
        self.vocab_file = hp.gfile_join(pretrained_model_dir, "vocab.txt")
        if not tf.io.gfile.exists(self.vocab_file):
            self.vocab_file = hp.gfile_join(data_dir, "vocab.txt")
        # A folder (its latest checkpoint) or a checkpoint prefix; None trains from scratch.
        self.init_checkpoint = pretrained_model_dir
        self.model_dir = hp.gfile_join(
            pretrained_model_dir, "finetuning_models", "{task}_model_{trial}"
        )
        tasks_str = ",".join(hparams.get("task_names", self.task_names))
        results_dir = hp.gfile_join(pretrained_model_dir, "results")
        self.results_txt = hp.gfile_join(results_dir, tasks_str + "_results.txt")
        self.results_json = hp.gfile_join(results_dir, tasks_str + "_results.json")
        qa_dir = hp.gfile_join(results_dir, tasks_str + "_qa")
        self.qa_eval_file = hp.gfile_join(qa_dir, "{task}_eval.json")
        self.qa_preds_file = hp.gfile_join(qa_dir, "{task}_preds.json")
        self.qa_na_file = hp.gfile_join(qa_dir, "{task}_null_odds.json")
        self.test_predictions = hp.gfile_join(
            pretrained_model_dir, "test_predictions", "trial_{trial}"
        )

        # ----- switches beyond the reference -----
        # True reproduces the released code's layer-wise decay, one power too many below the head
        # (google-research/electra issue 51); see electra_tf.training.optimization.
        self.layerwise_lr_decay_reference_bug = False
        self.strategy = "auto"  # auto, tpu, mirrored, multi_worker or cpu
        self.jit_compile = False
        self.mixed_precision = None  # None (float32) or "bfloat16"
        self.seed = 0  # trial t uses seed + t - 1 (initialisation, dropout, shuffling)
        self.task_specs = {}  # {task name: JSON task spec} for tasks that are not built in

        self.update(hparams)
        if self.debug and "init_checkpoint" not in hparams:
            self.init_checkpoint = None
        pretrained = self._pretrained_description()
        self._encoder = pretrained.get(ENCODER_CONFIG)
        inherited = {
            k: v
            for k, v in (pretrained.get("config") or {}).items()
            if k in _INHERITED and k not in hparams
        }
        self.update({k: v for k, v in inherited.items() if k == "model_size"})
        self.update(self._task_defaults())
        self.update(self._size_defaults())
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
        """The encoder and config JSON files beside the init checkpoint, when there are any."""
        if not self.init_checkpoint:
            return {}
        folder = checkpoint_dir(self.init_checkpoint)
        config = read_json(hp.gfile_join(folder, PRETRAIN_CONFIG)) or read_json(
            hp.gfile_join(folder, FINETUNE_CONFIG)
        )
        return {ENCODER_CONFIG: read_json(hp.gfile_join(folder, ENCODER_CONFIG)), "config": config}

    def task_kind(self, name):
        """A task's kind from its spec, its folder's task.json or the registry (None if unknown)."""
        spec = self.task_specs.get(name)
        if spec is None:
            spec = read_json(hp.gfile_join(self.raw_data_dir.format(task=name), "task.json"))
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
        if "squad" in name or "qa" in name or self.task_kind(name) == "span_qa":
            return {"max_seq_length": 512, "num_train_epochs": 2.0, "write_test_outputs": False}
        if name == "chunk":
            return {"max_seq_length": 256}
        return {"num_train_epochs": 3.0}

    def _size_defaults(self):
        size = hp.load_model_size(self.model_size)
        defaults = {"embedding_size": size["embedding_size"]} if "embedding_size" in size else {}
        section = size.get("finetuning", {})
        for key in section:
            if key not in self.hparam_names():
                match = hp.closest_match(key, self.hparam_names())
                raise ValueError(
                    "Unknown hparam '%s' in the 'finetuning' section of model size %r%s"
                    % (key, self.model_size, " (did you mean '%s'?)" % match if match else "")
                )
        defaults.update(section)
        return defaults

    def _validate(self):
        def check(name, allowed):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(map(repr, allowed))}, "
                    f"got {getattr(self, name)!r}"
                )

        check("strategy", STRATEGIES)
        check("mixed_precision", MIXED_PRECISION_POLICIES)
        hp.refuse_unused_tpu_keys(self)
        if (
            not isinstance(self.task_names, (list, tuple))
            or not self.task_names
            or not all(isinstance(n, str) and n for n in self.task_names)
        ):
            raise ValueError(
                f"task_names must be a non-empty list of task names, got {self.task_names!r}"
            )
        if not isinstance(self.task_specs, dict) or not all(
            isinstance(s, dict) for s in self.task_specs.values()
        ):
            raise ValueError("task_specs must map task names to JSON task specs (objects)")
        if not isinstance(self.num_trials, int) or self.num_trials < 1:
            raise ValueError(f"num_trials must be a positive integer, got {self.num_trials!r}")
        if not isinstance(self.model_hparam_overrides, dict):
            raise ValueError(
                f"model_hparam_overrides must be a dict, got {self.model_hparam_overrides!r}"
            )
        for key in self.model_hparam_overrides:
            if key not in hp.ENCODER_KEYS:
                match = hp.closest_match(key, hp.ENCODER_KEYS)
                raise ValueError(
                    f"Unknown key '{key}' in model_hparam_overrides"
                    f"{f' (did you mean {match!r}?)' if match else ''}. Allowed keys: "
                    f"{', '.join(hp.ENCODER_KEYS)}"
                )
        if self._encoder is not None:
            for key in ("vocab_size", "embedding_size"):
                if getattr(self, key) != self._encoder[key]:
                    raise ValueError(
                        f"{key}={getattr(self, key)} contradicts the pre-trained model's "
                        f"{ENCODER_CONFIG} beside {self.init_checkpoint} ({key} {self._encoder[key]}); "
                        f"leave {key} out, the pre-trained model fixes it."
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
            args = hp.resolve_encoder_hparams(
                self.model_size,
                vocab_size=self.vocab_size,
                overrides=self.model_hparam_overrides,
                embedding_size=self.model_hparam_overrides.get(
                    "embedding_size", self.embedding_size
                ),
            )
        if self.debug:
            args.update(_DEBUG_MODEL)
        return args
