"""Hyperparameters for pre-training ELECTRA (and Electric / BERT-style MLM).

:class:`PretrainingConfig` keeps every hyperparameter of the reference's
``configure_pretraining.PretrainingConfig`` with the same name and default, and
resolves them in the reference's order:

1. defaults, 2. passed-in hyperparameters, 3. debug-mode settings,
4. model-size defaults, 5. passed-in hyperparameters again (so they win over
   debug and size defaults).

Size defaults live in the ``model_sizes/<size>.json`` files (see
:func:`electra_tf.hparams.load_model_size`): embedding size and generator fraction,
and optionally a ``pretraining`` section of hyperparameter defaults (the demo size
has one). One rule for every bundled size: the released code's values, so base
and large (generator 1/4) do not change max_seq_length, learning_rate, batch sizes
or mask_prob. The paper's Table 6 settings are the sizes ``base_paper`` (generator
1/3) and ``large_paper`` (mask_prob 0.25), whose ``pretraining`` sections set 512
tokens, lr 2e-4 and batch 256/2048.
"""

from electra_tf import hparams as hp

__all__ = ["PretrainingConfig", "MASK_STRATEGIES", "MIXED_PRECISION_POLICIES", "STRATEGIES"]

MASK_STRATEGIES = ("uniform", "whole_word")
MIXED_PRECISION_POLICIES = (None, "bfloat16")
STRATEGIES = ("auto", "tpu", "mirrored", "multi_worker", "cpu")

# Settings of the reference's debug mode.
_DEBUG_SETTINGS = {
    "train_batch_size": 8,
    "num_train_steps": 20,
    "eval_batch_size": 4,
    "iterations_per_loop": 1,
    "num_eval_steps": 2,
}
# The reference's run_pretraining shrinks the transformer in debug mode.
_DEBUG_MODEL = {
    "num_hidden_layers": 3,
    "hidden_size": 144,
    "intermediate_size": 144 * 4,
    "num_attention_heads": 4,
}
# Top-level keys of a model-size file that are config hyperparameters.
_SIZE_CONFIG_KEYS = ("embedding_size", "generator_hidden_size", "generator_layers")


class PretrainingConfig(hp.HParams):
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
        # model)? If both are False, trains a masked LM like BERT.
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
        self.two_tower_generator = False  # two-tower cloze generator (Electric)
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
        self.pretrain_tfrecords = hp.gfile_join(
            data_dir, "pretrain_tfrecords", "pretrain_data.tfrecord*"
        )
        self.vocab_file = hp.gfile_join(data_dir, "vocab.txt")
        self.model_dir = hp.gfile_join(data_dir, "models", model_name)
        results_dir = hp.gfile_join(self.model_dir, "results")
        self.results_txt = hp.gfile_join(results_dir, "unsup_results.txt")
        self.results_pkl = hp.gfile_join(results_dir, "unsup_results.pkl")  # None: not written

        # ----- switches beyond the reference -----
        # Evaluation results as JSON, next to results_txt.
        self.results_json = hp.gfile_join(results_dir, "unsup_results.json")
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

        # update defaults with passed-in hyperparameters
        self.update(hparams)

        # debug-mode settings
        if self.debug:
            for k, v in _DEBUG_SETTINGS.items():
                setattr(self, k, v)

        # defaults for different-sized models, from the model-size file
        self.update(self._size_defaults())

        # passed-in arguments override (for example) debug-mode and size defaults
        self.update(hparams)

        if self.max_predictions_per_seq is None:
            self.max_predictions_per_seq = int((self.mask_prob + 0.005) * self.max_seq_length)
        self._validate()

    def _size_defaults(self):
        size = hp.load_model_size(self.model_size)
        defaults = {k: size[k] for k in _SIZE_CONFIG_KEYS if k in size}
        section = size.get("pretraining", {})
        known = set(self.hparam_names())
        for k in section:
            if k not in known:
                match = hp.closest_match(k, known)
                raise ValueError(
                    "Unknown hparam '%s' in the 'pretraining' section of model size "
                    "%r%s" % (k, self.model_size, " (did you mean '%s'?)" % match if match else "")
                )
        defaults.update(section)
        return defaults

    def _validate(self):
        def check(name, allowed):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(
                    "%s must be one of %s, got %r"
                    % (name, ", ".join(repr(a) for a in allowed), value)
                )

        check("mask_strategy", MASK_STRATEGIES)
        check("mixed_precision", MIXED_PRECISION_POLICIES)
        check("strategy", STRATEGIES)
        hp.refuse_unused_tpu_keys(self)
        if self.two_tower_generator:
            raise ValueError(
                "two_tower_generator is not implemented: it is the Electric objective's cloze "
                "generator, and electric_objective is not implemented yet; remove it."
            )
        every = self.log_every_steps
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError("log_every_steps must be a positive integer, got %r" % (every,))
        if self.electric_objective:
            raise ValueError(
                "electric_objective is not implemented yet (the Electric two-tower cloze "
                "objective is planned); set electric_objective to false to train ELECTRA "
                "(electra_objective true) or a masked LM (electra_objective false)."
            )
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError("mask_prob must be in (0, 1), got %r" % (self.mask_prob,))
        if not isinstance(self.model_hparam_overrides, dict):
            raise ValueError(
                "model_hparam_overrides must be a dict, got %r" % (self.model_hparam_overrides,)
            )
        bad = [k for k in self.model_hparam_overrides if k not in hp.ENCODER_KEYS]
        if bad:
            match = hp.closest_match(bad[0], hp.ENCODER_KEYS)
            raise ValueError(
                "Unknown key '%s' in model_hparam_overrides%s. Allowed keys: %s"
                % (
                    bad[0],
                    " (did you mean '%s'?)" % match if match else "",
                    ", ".join(hp.ENCODER_KEYS),
                )
            )

    def model_hparams(self):
        """Discriminator encoder hyperparameters (BERT config keys).

        Resolved from ``model_size``, ``vocab_size`` and
        ``model_hparam_overrides`` like the reference's
        ``training_utils.get_bert_config``; ``embedding_size`` is the config's
        (hidden size when None). In debug mode the transformer is shrunk to 3
        layers of hidden size 144 with 4 heads, as the reference's
        ``run_pretraining`` does.
        """
        args = hp.resolve_encoder_hparams(
            self.model_size, vocab_size=self.vocab_size, overrides=self.model_hparam_overrides
        )
        if self.debug:
            args.update(_DEBUG_MODEL)
        embedding_size = self.model_hparam_overrides.get("embedding_size", self.embedding_size)
        args["embedding_size"] = args["hidden_size"] if embedding_size is None else embedding_size
        return args

    def generator_hparams(self):
        """Generator hyperparameters, as the reference's ``get_generator_config``.

        hidden = round(discriminator hidden * generator_hidden_size), heads =
        max(1, hidden // 64), intermediate = 4 * hidden, layers =
        round(discriminator layers * generator_layers). ``embedding_size`` is the
        discriminator's (shared token embeddings) unless
        ``untied_generator_embeddings``. Whether a separate generator is built at
        all (``untied_generator``, ``electra_objective``...) is up to the model.
        """
        return hp.generator_hparams_from(
            self.model_hparams(),
            self.generator_hidden_size,
            self.generator_layers,
            self.untied_generator_embeddings,
        )
