"""MobileBERT distillation pre-training end to end: teacher, student, two stages, evaluation.

What `run_distillation.py` runs, with `run_pretraining.py`'s conventions: data in
DATA/pretrain_tfrecords, vocabulary DATA/vocab.txt, the student's model dir DATA/models/NAME,
results in DATA/models/NAME/results/unsup_results.{txt,json}; masks drawn in the graph every
step (`masking.mask_inputs`, uniform or whole-word) and shown to teacher and student alike.

The original's schedule (ymcui/Chinese-MobileBERT `run_pretraining.py`, = google-research's):
1. with `layer_wise_warmup`, `num_distill_steps` of progressive layer-wise transfer
   (`distillation.progressive_transfer_losses`), one phase per student block, at the constant
   `learning_rate`; checkpoints, TensorBoard logs and the input position in NAME/warmup/;
2. then `num_train_steps` of pre-training distillation (masked LM against
   `distill_ground_truth_ratio` x one-hot + the rest x the teacher's distribution; without a
   teacher, or with ratio 1, a plain masked LM) from the stage-1 student, with a fresh optimizer
   and step counter, `num_warmup_steps` of linear warm-up and a linear decay to
   learning_rate x 1e-4; checkpoints in NAME/.
The student starts with the teacher's embeddings and masked-LM head where shapes match
(`distillation.init_student_from_teacher`). `optimizer` "adamw" (the project's reference AdamW)
or "lamb" (`training.lamb.Lamb`, which in stage 1 trains only the blocks, by phase, as the
original); both clip to global norm 1 and skip weight decay for norms and biases. Each stage
resumes bit-identically from its last checkpoint.

The student's encoder is the layer "electra" and `encoder_config.json` says
`"model_type": "mobilebert"`, so `run_finetuning.py` fine-tunes the model dir as it is.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf import fileio
from electra_tf.modeling import networks
from electra_tf.modeling.heads import gather_positions
from electra_tf.modeling.mobilebert import MobileBertForPreTraining, load_mobilebert_size
from electra_tf.pretraining import distillation, input_pipeline, masking, trainer
from electra_tf.pretraining.config import DataDirHParams
from electra_tf.training import distribution, lamb, loop, optimization, seeds
from electra_tf.training import model_dir as model_dir_lib
from electra_tf.training.distribution import MIXED_PRECISION_POLICIES, STRATEGIES

OPTIMIZERS = ("adamw", "lamb")
WARMUP_DIR = "warmup"
DISTILL_CONFIG = "distill_config.json"
# Stage 1's masks and dropout come from seed + this (stage 2's from seed, as run_pretraining.py).
WARMUP_SEED_OFFSET = 1009
# The original's stage-2 learning rate ends at learning_rate x this.
END_LR_RATE = 1e-4
# No weight decay (nor LAMB trust ratio) for these, as the original's list ("LayerNorm",
# "layer_norm", "bias", "FakeLayerNorm"); our norms are named `norm`, `*_norm`.
EXCLUDE_FROM_WEIGHT_DECAY = optimization.DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY + (r"(^|/|_)norm/",)


class DistillationHParams(DataDirHParams):
    """`run_distillation.py`'s hyperparameters: the original's flag names and defaults.

    Original flags kept: learning_rate, num_train_steps, num_warmup_steps, optimizer,
    weight_decay_rate, train_batch_size, eval_batch_size, max_seq_length,
    max_predictions_per_seq, save_checkpoints_steps, iterations_per_loop, max_eval_steps, do_train,
    do_eval, use_tpu, tpu_name, tpu_zone, gcp_project and the distillation flags
    (layer_wise_warmup, num_distill_steps, distill_temperature, distill_ground_truth_ratio,
    attention/hidden/beta/gamma_distill_factor). `teacher` replaces bert_teacher_config_file +
    init_checkpoint (any model `conversion.teacher.load_teacher` reads; null trains the student
    from scratch as a plain masked LM), `model_size` replaces bert_config_file (a
    `model_sizes/mobilebert_*.json` name or a path). The first_* flags (a first round at another
    length) are not supported.
    """

    NULLABLE = ("keep_checkpoint_max", "teacher", "vocab_size")

    def __init__(self, model_name, data_dir, **hparams):
        self.model_name = model_name
        self.teacher = None
        self.model_size = "mobilebert_base_f2"
        self.model_hparam_overrides = {}
        self.vocab_size = None  # the size file's
        self.do_lower_case = True
        self.do_train = True
        self.do_eval = False
        # the original's flags
        self.learning_rate = 5e-5
        self.num_train_steps = 100000
        self.num_warmup_steps = 10000
        self.optimizer = "adamw"
        self.weight_decay_rate = 0.01
        self.train_batch_size = 32
        self.eval_batch_size = 8
        self.max_seq_length = 128
        self.max_predictions_per_seq = 20
        self.save_checkpoints_steps = 1000
        self.iterations_per_loop = 1000
        self.log_every_steps = 100  # progress, rate and ETA; a host loop ends at each
        self.max_eval_steps = 100
        self.use_tpu = False
        self.tpu_name = None
        self.tpu_zone = None
        self.gcp_project = None
        # The distillation flags (and reference_quirks, beyond the original: its loss and
        # schedule quirks) are `distillation.DistillationConfig`'s fields, with its defaults.
        for field in dataclasses.fields(distillation.DistillationConfig):
            setattr(self, field.name, field.default)
        # ----- switches beyond the original -----
        self.mask_prob = 0.15
        self.mask_strategy = "uniform"  # or "whole_word"
        self.masking_with_replacement = False
        self.keep_checkpoint_max = 5
        self.seed = 0
        self.jit_compile = False
        self.mixed_precision = None
        self.strategy = "auto"
        self.update_paths(model_name, data_dir)
        self.update(hparams)
        self._validate()

    def _validate(self):
        self.check_choice("optimizer", OPTIMIZERS)
        self.check_choice("mask_strategy", masking.STRATEGIES)
        self.check_choice("mixed_precision", MIXED_PRECISION_POLICIES)
        self.check_choice("strategy", STRATEGIES)
        self.check_positive(
            "learning_rate",
            "num_train_steps",
            "train_batch_size",
            "eval_batch_size",
            "max_seq_length",
            "max_predictions_per_seq",
            "save_checkpoints_steps",
            "iterations_per_loop",
            "log_every_steps",
            "max_eval_steps",
            "num_distill_steps",
        )
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"hparam 'mask_prob' must be in (0, 1), got {self.mask_prob!r}")
        if self.num_warmup_steps < 0:
            raise ValueError(f"hparam 'num_warmup_steps' must be >= 0, got {self.num_warmup_steps}")
        self.distillation()  # range checks of the distillation flags
        factors = distillation.ORIGINAL_TRANSFER_FACTORS
        if self.layer_wise_warmup and not any(getattr(self, name) for name in factors):
            original = ", ".join(f"{value:g}" for value in factors.values())
            raise ValueError(
                "layer_wise_warmup needs a non-zero hidden_distill_factor, "
                "attention_distill_factor or beta_/gamma_distill_factor (the original's "
                f"run.pretrain.sh: {original})."
            )
        if self.teacher is None and (
            self.layer_wise_warmup or self.distill_ground_truth_ratio != 1.0
        ):
            raise ValueError(
                "hparam 'teacher' is required with layer_wise_warmup or "
                "distill_ground_truth_ratio < 1 (null trains the student alone as a masked LM)."
            )
        if self.teacher is not None and not (isinstance(self.teacher, str) and self.teacher):
            raise ValueError(f"hparam 'teacher' must be a path or null, got {self.teacher!r}")

    def distillation(self):
        """The loss settings as `distillation.DistillationConfig`."""
        fields = dataclasses.fields(distillation.DistillationConfig)
        return distillation.DistillationConfig(**{f.name: getattr(self, f.name) for f in fields})

    def student_config(self):
        """The student's `MobileBertConfig`: the size file, `vocab_size`, the overrides."""
        overrides = dict(self.model_hparam_overrides)
        if self.vocab_size is not None:
            overrides.setdefault("vocab_size", self.vocab_size)
        return load_mobilebert_size(self.model_size, **overrides)


class Distiller:
    """Everything `run_distillation.py` does, as an object tests and benchmarks can drive.

    Args:
      config: `DistillationHParams`.
      load_teacher: path -> `conversion.teacher.Teacher` (the command passes
        `electra_tf.conversion.teacher.load_teacher`; conversion sits above this layer).
      strategy: a tf.distribute strategy (default from the config).
    """

    def __init__(self, config, load_teacher=None, strategy=None):
        self.config = config
        self.loss_config = config.distillation()
        self.student_config = config.student_config()
        config.vocab_size = self.student_config.vocab_size  # what vocab_facts checks
        self.strategy = distribution.strategy_for(
            config, strategy, ("train_batch_size", "eval_batch_size")
        )
        self.files = input_pipeline.list_input_files(config.pretrain_tfrecords)
        info = input_pipeline.check_dataset_info(
            config.pretrain_tfrecords,
            config.vocab_file,
            config.max_seq_length,
            do_lower_case=config.do_lower_case,
        )
        self.with_word_starts = bool(info and "is_word_start" in info["features"])
        self.mask_id, self.special_ids, continuation_ids = trainer.vocab_facts(config)
        self._continuation_table = None
        if config.mask_strategy == "whole_word" and not self.with_word_starts:
            self._continuation_table = masking.continuation_table(
                continuation_ids, self.student_config.vocab_size
            )
        if config.max_seq_length > self.student_config.max_position_embeddings:
            raise ValueError(
                f"max_seq_length {config.max_seq_length} exceeds the student's "
                f"max_position_embeddings {self.student_config.max_position_embeddings} "
                f"(model_size {config.model_size})."
            )
        keras.utils.set_random_seed(config.seed)
        with self.strategy.scope():
            self.student = MobileBertForPreTraining(
                self.student_config, encoder_name=networks.DISCRIMINATOR, name="student"
            )
            self.student.build_parts()  # paths electra/..., mlm_head/...
            self.teacher = None
            if config.teacher is not None:
                if load_teacher is None:
                    raise ValueError("A teacher needs load_teacher (conversion.teacher).")
                self.teacher = load_teacher(config.teacher)
                self.teacher.model.trainable = False
                self._check_teacher()
                copied = distillation.init_student_from_teacher(self.student, self.teacher.model)
                logging.info("Student starts with the teacher's %s", ", ".join(copied))
        self._loops = {}
        tf.io.gfile.makedirs(config.model_dir)
        if distribution.is_chief(self.strategy):
            model_dir_lib.write(
                config.model_dir,
                model_dir_lib.ENCODER_CONFIG,
                networks.encoder_config_to_dict(self.student_config),
            )
            model_dir_lib.write(config.model_dir, DISTILL_CONFIG, config.to_dict())

    # ----- checks ---------------------------------------------------------------------------

    def _check_teacher(self):
        config, student = self.config, self.student_config
        teacher = self.teacher.model.config
        where = f"teacher {self.teacher.source}"
        if config.max_seq_length > teacher.max_position_embeddings:
            raise ValueError(
                f"{where}: max_position_embeddings {teacher.max_position_embeddings} < "
                f"max_seq_length {config.max_seq_length}."
            )
        if self.loss_config.distill_ground_truth_ratio != 1.0:
            if teacher.vocab_size != student.vocab_size:
                raise ValueError(
                    f"{where}: vocab_size {teacher.vocab_size} != the student's "
                    f"{student.vocab_size}; soft labels need the same vocabulary."
                )
            if not self.teacher.has_mlm_head:
                raise ValueError(
                    f"{where} has no masked-LM head: use distill_ground_truth_ratio 1.0 or a "
                    "teacher with one."
                )
        if self.loss_config.layer_wise_warmup:
            for key in ("hidden_size", "num_hidden_layers"):
                if getattr(teacher, key) != getattr(student, key):
                    raise ValueError(
                        f"{where}: {key} {getattr(teacher, key)} != the student's "
                        f"{getattr(student, key)}; layer-wise transfer maps them one to one."
                    )
            if (
                self.loss_config.attention_distill_factor
                and teacher.num_attention_heads != student.num_attention_heads
            ):
                raise ValueError(
                    f"{where}: num_attention_heads {teacher.num_attention_heads} != the "
                    f"student's {student.num_attention_heads} (attention_distill_factor > 0)."
                )

    # ----- inputs and losses ------------------------------------------------------------------

    def _dataset_fn(self, batch_size, is_training, seed):
        def dataset_fn(input_context):
            return input_pipeline.make_dataset(
                self.files,
                input_context.get_per_replica_batch_size(batch_size),
                self.config.max_seq_length,
                seed,
                is_training=is_training,
                with_word_starts=self.with_word_starts,
                input_context=input_context,
            )

        return dataset_fn

    def _mask(self, features, seed):
        """Masked inputs for the encoders and the [B, P] masked-LM targets."""
        mask_seed = tf.random.experimental.stateless_fold_in(seed, 0, alg=seeds.ALG)
        masked = masking.mask_features(
            features,
            mask_seed,
            self.config,
            self.mask_id,
            self.special_ids,
            self._continuation_table,
        )
        inputs = {
            "input_ids": masked["masked_input_ids"],
            "input_mask": features["input_mask"],
            "segment_ids": features["segment_ids"],
        }
        return inputs, masked

    def _transfer_loss(self, features, seed, training):
        """Stage 1: the progressive layer-wise transfer losses at the stage's global step."""
        inputs, _ = self._mask(features, seed)
        teacher = self.teacher.model.encoder(inputs, training=False, return_attention_scores=True)
        student = self.student.encoder(inputs, training=training, return_attention_scores=True)
        step = self._loops["warmup"].optimizer.iterations
        losses = distillation.transfer_losses(teacher, student, step, self.loss_config)
        return losses.pop("loss"), losses

    def mlm_outputs(self, features, seed, training):
        """Stage 2's loss terms and what evaluation reads, for one batch."""
        inputs, masked = self._mask(features, seed)
        positions, ids = masked["masked_lm_positions"], masked["masked_lm_ids"]
        weights = masked["masked_lm_weights"]
        sequence = self.student.encoder(inputs, training=training)["sequence_output"]
        logits = self.student.mlm_head(gather_positions(sequence, positions))  # [B, P, V]
        c = self.loss_config
        teacher_probs = None
        if c.distill_ground_truth_ratio != 1.0:
            teacher = self.teacher.model.encoder(inputs, training=False)["sequence_output"]
            teacher_probs = distillation.teacher_distribution(
                self.teacher.model.mlm_head,
                gather_positions(teacher, positions),
                c.distill_temperature,
                c.reference_quirks,
            )
        losses = distillation.distillation_mlm_loss(
            logits, teacher_probs, ids, weights, c.distill_ground_truth_ratio
        )
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        nll = -tf.reduce_sum(log_probs * tf.one_hot(ids, tf.shape(logits)[-1]), -1)  # [B, P]
        return losses, {
            "masked_lm_ids": ids,
            "masked_lm_preds": tf.argmax(logits, -1, output_type=ids.dtype),
            "masked_lm_weights": weights,
            "mlm_nll": nll,
        }

    def _mlm_loss(self, features, seed, training):
        losses, _ = self.mlm_outputs(features, seed, training)
        return losses["masked_lm_loss"], {"masked_lm_accuracy": losses["masked_lm_accuracy"]}

    # ----- optimizers and loops ---------------------------------------------------------------

    def _optimizer(self, stage):
        config = self.config
        if stage == "warmup":  # the original: constant learning rate, no warm-up
            steps = config.num_distill_steps
            schedule = optimization.PolynomialDecayWithWarmup(
                config.learning_rate, steps, end_learning_rate=config.learning_rate
            )
        else:
            steps = config.num_train_steps
            schedule = optimization.PolynomialDecayWithWarmup(
                config.learning_rate,
                steps,
                num_warmup_steps=config.num_warmup_steps,
                end_learning_rate=config.learning_rate * END_LR_RATE,
            )
        common = dict(
            learning_rate=schedule,
            weight_decay_rate=config.weight_decay_rate,
            beta_1=0.9,
            beta_2=0.999,
            epsilon=1e-6,
            exclude_from_weight_decay=EXCLUDE_FROM_WEIGHT_DECAY,
            clip_norm=1.0,
        )
        if config.optimizer == "lamb":
            phase = 0
            if stage == "warmup":
                phase = distillation.steps_per_phase(
                    config.num_distill_steps, self.student_config.num_hidden_layers
                )
            return lamb.Lamb(
                steps_per_phase=phase,
                layer_pattern=rf"(^|/){networks.DISCRIMINATOR}/layer_(\d+)/",
                reference_quirks=config.reference_quirks,
                **common,
            )
        return optimization.AdamWeightDecay(**common)

    def stage_dir(self, stage):
        if stage == "warmup":
            return fileio.join(self.config.model_dir, WARMUP_DIR)
        return self.config.model_dir

    def train_loop(self, stage):
        """The stage's `TrainLoop` ("warmup": stage 1, "main": stage 2), made once."""
        if stage not in self._loops:
            config = self.config
            with self.strategy.scope():
                optimizer = self._optimizer(stage)
                optimizer.build(self.student.trainable_variables)
            if stage == "warmup":
                steps, loss_fn = config.num_distill_steps, self._transfer_loss
                seed = config.seed + WARMUP_SEED_OFFSET
            else:
                steps, seed, loss_fn = config.num_train_steps, config.seed, self._mlm_loss
            settings = loop.LoopSettings.from_config(config, self.stage_dir(stage), steps, seed)
            self._loops[stage] = loop.TrainLoop(
                self.strategy,
                self.student,
                optimizer,
                loss_fn,
                self._dataset_fn(config.train_batch_size, True, seed),
                settings,
            )
        return self._loops[stage]

    def train(self, stop_at=None):
        """Stage 1 (with layer_wise_warmup) then stage 2, each resuming its last checkpoint.

        `stop_at` {"warmup" or "main": step} ends that stage at the checkpoint at/after the step
        (as if killed there) and returns without going on.
        """
        stop_at = stop_at or {}
        main_started = tf.train.latest_checkpoint(self.stage_dir("main")) is not None
        if self.loss_config.layer_wise_warmup and not main_started:
            warmup = self.train_loop("warmup")
            logging.info(
                "Stage 1: progressive layer-wise transfer, %d steps", self.config.num_distill_steps
            )
            warmup.train(stop_at.get("warmup"))
            if int(warmup.optimizer.iterations.numpy()) < self.config.num_distill_steps:
                return
            # Stage 2 starts from the stage-1 student (weights and dropout states).
            self._restore_student(self.stage_dir("warmup"))
        logging.info("Stage 2: pre-training distillation, %d steps", self.config.num_train_steps)
        self.train_loop("main").train(stop_at.get("main"))

    def _restore_student(self, folder):
        prefix = tf.train.latest_checkpoint(folder)
        checkpoint = tf.train.Checkpoint(model=model_dir_lib.named_variables(self.student))
        checkpoint.read(prefix).expect_partial().assert_existing_objects_matched()
        return prefix

    # ----- evaluation -------------------------------------------------------------------------

    def evaluate(self):
        """Masked-LM accuracy and loss of the student over `max_eval_steps` batches of held data
        (masks drawn as `run_pretraining.py`'s evaluation draws them)."""
        config, strategy = self.config, self.strategy
        checkpoint = None
        for stage in ("main", "warmup"):
            if stage in self._loops:  # trained in this process: the student as it is
                checkpoint = f"{stage} step {int(self._loops[stage].optimizer.iterations.numpy())}"
                break
        else:  # a fresh process: the latest student on disk
            for stage in ("main", "warmup"):
                if tf.train.latest_checkpoint(self.stage_dir(stage)):
                    checkpoint = self._restore_student(self.stage_dir(stage))
                    break
            else:
                raise FileNotFoundError(f"No checkpoint to evaluate in {config.model_dir}.")
        logging.info("Evaluating the student (%s)", checkpoint)
        dataset = strategy.distribute_datasets_from_function(
            self._dataset_fn(config.eval_batch_size, False, config.seed)
        )

        def outputs_fn(features, seed, training):
            return self.mlm_outputs(features, seed, training)[1]

        collected = trainer.collect_eval_outputs(
            config, strategy, dataset, config.max_eval_steps, outputs_fn
        )
        cat = {k: np.concatenate([part.ravel() for part in v]) for k, v in collected.items()}
        w = cat["masked_lm_weights"].astype(np.float64)
        correct = (cat["masked_lm_ids"] == cat["masked_lm_preds"]).astype(np.float64)
        return {
            "masked_lm_accuracy": float(np.sum(correct * w) / max(w.sum(), 1e-12)),
            "masked_lm_loss": float(np.sum(cat["mlm_nll"] * w) / max(w.sum(), 1e-12)),
            "num_predictions": int(w.sum()),
            "checkpoint": checkpoint,
        }

    def write_results(self, results):
        """unsup_results.txt (run_pretraining.py's format) and .json, atomically."""
        if not distribution.is_chief(self.strategy):
            return
        text = trainer.write_results_files(self.config, results)
        logging.info("Evaluation results (%s):\n%s", self.config.results_txt, text)


def run_distillation(config, load_teacher=None, strategy=None):
    """Trains and/or evaluates as `config` says; returns the evaluation results (None without
    `do_eval`)."""
    logging.info("Config:\n%s", config.to_json())
    return trainer.train_and_evaluate(Distiller(config, load_teacher, strategy), config)
