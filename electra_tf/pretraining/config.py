"""Hyperparameters for pre-training ELECTRA (and Electric / BERT-style MLM).

:class:`PretrainingConfig` keeps every hyperparameter of the reference's
``configure_pretraining.PretrainingConfig`` with the same name and default, and
resolves them in the reference's order:

1. defaults, 2. passed-in hyperparameters, 3. debug-mode settings,
4. model-size defaults, 5. passed-in hyperparameters again (so they win over
   debug and size defaults).

Size defaults live in the ``model_sizes/<size>.json`` files (see
:mod:`electra_tf.modeling.sizes`): embedding size and generator fraction,
and optionally a ``pretraining`` section of hyperparameter defaults (the demo size
has one). One rule for every bundled size: the released code's values, so base
and large (generator 1/4) do not change max_seq_length, learning_rate, batch sizes
or mask_prob. The paper's Table 6 settings are the sizes ``base_paper`` (generator
1/3) and ``large_paper`` (mask_prob 0.25), whose ``pretraining`` sections set 512
tokens, lr 2e-4 and batch 256/2048.
"""

from electra_tf import fileio
from electra_tf import hparams as hp
from electra_tf.modeling import sizes
from electra_tf.pretraining import masking
from electra_tf.training.distribution import MIXED_PRECISION_POLICIES, STRATEGIES

__all__ = ["PretrainingConfig"]

# Settings of the reference's debug mode.
_DEBUG_SETTINGS = dict(train_batch_size=8, num_train_steps=20, eval_batch_size=4)
_DEBUG_SETTINGS.update(iterations_per_loop=1, num_eval_steps=2)
# Top-level keys of a model-size file that are config hyperparameters.
_SIZE_CONFIG_KEYS = ("embedding_size", "generator_hidden_size", "generator_layers")


class DataDirHParams(hp.HParams):
    """Base of the configs of the jobs that read pre-training data (`PretrainingConfig`,
    `distiller.DistillationHParams`): the reference's layout of `data_dir` and reloading a saved
    config for another `data_dir` or model name."""

    # Hparams derived from `model_name` and `data_dir` by `update_paths`.
    PATH_HPARAMS = ("pretrain_tfrecords", "vocab_file", "model_dir", "results_txt", "results_json")

    def update_paths(self, model_name, data_dir):
        """Sets the hparams derived from `model_name` and `data_dir` (the reference's layout)."""
        self.model_name = model_name
        self.pretrain_tfrecords = fileio.join(
            data_dir, "pretrain_tfrecords", "pretrain_data.tfrecord*"
        )
        self.vocab_file = fileio.join(data_dir, "vocab.txt")
        self.model_dir = fileio.join(data_dir, "models", model_name)
        self.results_txt = fileio.join(self.model_dir, "results", "unsup_results.txt")
        # Beyond the reference: the evaluation results as JSON, next to results_txt.
        self.results_json = fileio.join(self.model_dir, "results", "unsup_results.json")

    @classmethod
    def from_hparams(cls, values, model_name, data_dir):
        """A config from `--hparams` values, which may be a saved config JSON file.

        The one rule for every reload: a path hparam the saved run derived from its own model
        directory is derived again for `data_dir` and `model_name`; a path set explicitly (another
        vocab file, say) is kept; `model_name` is always the one given.
        """
        values = dict(values)
        values.pop("model_name", None)
        old_dir = values.get("model_dir")
        if isinstance(old_dir, str) and old_dir:
            probe = object.__new__(cls)
            probe.update_paths(fileio.basename(old_dir), fileio.dirname(fileio.dirname(old_dir)))
            for key in cls.PATH_HPARAMS:
                if key in values and values[key] == getattr(probe, key):
                    del values[key]
        return cls(model_name, data_dir, **values)


class PretrainingConfig(DataDirHParams):
    """Defines pre-training hyperparameters.

    Args:
      model_name: name of the model; the model directory is
        ``<data_dir>/models/<model_name>``.
      data_dir: directory (any ``tf.io.gfile`` path) holding the pre-training
        tfrecords, the vocabulary and the models.
      **hparams: hyperparameters overriding the defaults; an unknown name raises
        ``ValueError`` naming the closest known one.
    """

    def __init__(self, model_name, data_dir, **hparams):
        self.model_name = model_name
        self.debug = False  # debug mode for quickly running things
        self.do_train = True  # pre-train ELECTRA
        self.do_eval = False  # evaluate generator/discriminator on unlabeled data

        # loss functions
        # ELECTRA (replaced-token detection) or Electric (cloze-style energy
        # model, needs two_tower_generator; it takes precedence over
        # electra_objective, as in the reference)? If both are False, trains a
        # masked LM like BERT.
        self.electra_objective = True
        self.electric_objective = False
        self.gen_weight = 1.0  # weight of the masked-LM / generator loss
        self.disc_weight = 50.0  # weight of the discriminator loss
        self.mask_prob = 0.15  # fraction of input tokens masked out / replaced

        # optimization
        self.learning_rate = 5e-4
        self.lr_decay_power = 1.0  # linear learning-rate decay by default
        self.weight_decay_rate = 0.01
        self.num_warmup_steps = 10000

        # training settings
        self.iterations_per_loop = 200  # steps per host loop / tf.function call
        self.save_checkpoints_steps = 1000
        self.num_train_steps = 1000000
        self.num_eval_steps = 100
        self.keep_checkpoint_max = 5  # most recent checkpoints to keep; 0 or
        # None keeps all of them

        # model settings
        # a bundled size ("small", "base", "large", "tiny", "small_ex", "demo")
        # or the path of a JSON file in the same format
        self.model_size = "small"
        # override the transformer hparams of the model size (BERT config keys:
        # hidden_size, num_hidden_layers, num_attention_heads, ...)
        self.model_hparam_overrides = {}
        self.embedding_size = None  # hidden size by default
        self.vocab_size = 30522  # number of tokens in the vocabulary
        self.do_lower_case = True  # lowercase the input?

        # generator settings
        self.uniform_generator = False  # generator samples uniformly at random
        self.two_tower_generator = False  # two-tower cloze generator (Electric;
        # with ELECTRA it replaces the masked-LM generator)
        self.untied_generator_embeddings = False  # False: generator and
        # discriminator share token
        # embeddings
        self.untied_generator = True  # False: generator and discriminator share
        # all weights
        self.generator_layers = 1.0  # fraction of discriminator layers
        self.generator_hidden_size = 0.25  # fraction of discriminator hidden size
        self.disallow_correct = False  # force the generator to sample incorrect
        # tokens (so masked tokens are always fake)
        self.temperature = 1.0  # temperature for sampling from the generator

        # batch sizes
        self.max_seq_length = 128
        self.train_batch_size = 128
        self.eval_batch_size = 128

        # TPU settings
        self.use_tpu = False
        self.num_tpu_cores = 1
        self.tpu_job_name = None
        self.tpu_name = None  # cloud TPU to use for training
        self.tpu_zone = None  # GCE zone where the Cloud TPU is located in
        self.gcp_project = None  # project name for the Cloud TPU-enabled project

        # default locations of data files
        self.update_paths(model_name, data_dir)

        # ----- switches beyond the reference -----
        # Masked positions per sequence. None derives it like the reference:
        # int((mask_prob + 0.005) * max_seq_length), computed after the size
        # defaults so that base/large get the value for their 512 tokens.
        self.max_predictions_per_seq = None
        # How positions to mask are chosen: "uniform" picks word pieces
        # independently (the reference); "whole_word" masks all pieces of a word
        # together.
        self.mask_strategy = "uniform"
        # False samples the masked positions without replacement, so exactly
        # min(max_predictions_per_seq, round(mask_prob * length)) distinct
        # positions are masked. True reproduces the reference's sampling with
        # replacement (tf.random.categorical), which can pick a position twice
        # and then masks fewer tokens than intended; such a position then gets
        # the floor of the mean of its sampled ids, as the reference's
        # scatter_update writes it.
        self.masking_with_replacement = False
        # Random seed for initialization, masking and generator sampling.
        self.seed = 0
        # Compile the training step with XLA (tf.function(jit_compile=True)).
        self.jit_compile = False
        # Mixed precision compute dtype: None (float32) or "bfloat16" (Keras
        # mixed_bfloat16: bf16 compute, float32 variables, no loss scaling).
        self.mixed_precision = None
        # Distribution strategy: "auto" (TPU if use_tpu or tpu_name is set, else
        # mirrored over the local GPUs, else the default CPU strategy), "tpu",
        # "mirrored", "multi_worker" (MultiWorkerMirroredStrategy from
        # TF_CONFIG) or "cpu".
        self.strategy = "auto"
        # Log losses and throughput (and write TensorBoard scalars) every this many
        # training steps, averaged over them; a host loop ends at each logging step.
        self.log_every_steps = 100
        # Accept TFRecords without dataset_info.json (e.g. built by the reference code); their
        # vocabulary and max_seq_length are then not checked. Without it such data is refused:
        # the builder writes dataset_info.json last, so data without it is an incomplete build.
        self.allow_missing_dataset_info = False
        # A truncated record or bad CRC in a shard: "error" fails naming the shard; "skip" skips
        # the shard's unreadable remainder with a warning naming it and the bytes lost.
        self.on_corrupt_shard = "error"

        # update defaults with passed-in hyperparameters
        self.update(hparams)

        # debug-mode settings
        if self.debug:
            for k, v in _DEBUG_SETTINGS.items():
                setattr(self, k, v)

        # defaults for different-sized models, from the model-size file
        size = sizes.load_model_size(self.model_size)
        self.update(self.size_defaults(size, "pretraining", _SIZE_CONFIG_KEYS))

        # passed-in arguments override (for example) debug-mode and size defaults
        self.update(hparams)

        if self.max_predictions_per_seq is None:
            self.max_predictions_per_seq = int((self.mask_prob + 0.005) * self.max_seq_length)
        self._validate()

    PATH_HPARAMS = DataDirHParams.PATH_HPARAMS + ("results_pkl",)
    NULLABLE = ("keep_checkpoint_max", "results_pkl")
    FIXED = ("model_name",)

    def update_paths(self, model_name, data_dir):
        super().update_paths(model_name, data_dir)
        # None: not written.
        self.results_pkl = fileio.join(self.model_dir, "results", "unsup_results.pkl")

    def _validate(self):
        self.check_choice("mask_strategy", masking.STRATEGIES)
        self.check_choice("mixed_precision", MIXED_PRECISION_POLICIES)
        self.check_choice("strategy", STRATEGIES)
        self.check_choice("on_corrupt_shard", ("error", "skip"))
        self.check_positive(
            "learning_rate",
            "iterations_per_loop",
            "save_checkpoints_steps",
            "num_train_steps",
            "num_eval_steps",
            "max_seq_length",
            "train_batch_size",
            "eval_batch_size",
            "vocab_size",
            "temperature",
            "max_predictions_per_seq",
            "log_every_steps",
        )
        hp.refuse_unused_tpu_keys(self)
        self._validate_generator()
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"hparam 'mask_prob' must be in (0, 1), got {self.mask_prob!r}")
        self.check_encoder_overrides(sizes.ENCODER_KEYS)
        positions = self.model_hparams()["max_position_embeddings"]
        if self.max_seq_length > positions:
            raise ValueError(
                f"hparam 'max_seq_length' ({self.max_seq_length}) exceeds the model's "
                f"max_position_embeddings ({positions}); lower it or set max_position_embeddings "
                "in model_hparam_overrides."
            )

    def _validate_generator(self):
        """The combinations the reference runs (others crash there or drop a switch silently)."""
        if self.electric_objective and not self.two_tower_generator:
            raise ValueError(
                "electric_objective needs two_tower_generator true: Electric's noise distribution "
                "is the two-tower cloze model (the reference has no other)."
            )
        if not self.two_tower_generator:
            return
        if not (self.electra_objective or self.electric_objective):
            raise ValueError(
                "two_tower_generator is a generator for a discriminator: set electric_objective "
                "(Electric) or electra_objective (ELECTRA) to true."
            )
        if self.uniform_generator or not self.untied_generator:
            raise ValueError(
                "two_tower_generator needs untied_generator true and uniform_generator false: "
                "the cloze towers are separate networks (the reference ignores the towers "
                "otherwise)."
            )

    def model_hparams(self):
        """Discriminator encoder hyperparameters (BERT config keys).

        Resolved from `model_size`, `vocab_size` and `model_hparam_overrides` like the reference's
        `training_utils.get_bert_config`; `embedding_size` is the config's (hidden size when None).
        Debug mode shrinks the transformer to 3 layers of hidden size 144 with 4 heads, as the
        reference's `run_pretraining` does.
        """
        args = sizes.resolve_encoder_hparams(
            self.model_size, vocab_size=self.vocab_size, overrides=self.model_hparam_overrides
        )
        if self.debug:
            args.update(sizes.DEBUG_MODEL)
        embedding_size = self.model_hparam_overrides.get("embedding_size", self.embedding_size)
        args["embedding_size"] = args["hidden_size"] if embedding_size is None else embedding_size
        return args

    def generator_hparams(self):
        """Generator hyperparameters, as the reference's `get_generator_config`.

        hidden = round(discriminator hidden * generator_hidden_size), heads = max(1, hidden // 64),
        intermediate = 4 * hidden, layers = round(discriminator layers * generator_layers).
        `embedding_size` is the discriminator's (shared token embeddings) unless
        `untied_generator_embeddings`. Whether a separate generator is built at all
        (`untied_generator`, `electra_objective`...) is up to the network factory.
        """
        return sizes.generator_hparams_from(
            self.model_hparams(),
            self.generator_hidden_size,
            self.generator_layers,
            self.untied_generator_embeddings,
        )
