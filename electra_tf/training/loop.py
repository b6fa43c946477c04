"""The training loop shared by pre-training and fine-tuning.

One `tf.function` runs `iterations_per_loop` steps (the TPUEstimator's host loop); each step is
`strategy.run` of a replica step that may be XLA-compiled whole (loss, gradients, optimizer
update). Randomness is stateless and keyed by (seed, step, replica), and the checkpoint holds the
model, the optimizer (whose `iterations` is the global step) and the input iterator, so a killed
run restarted from its last checkpoint continues bit-identically on deterministic hardware.
"""

import dataclasses
import math
import time

import tensorflow as tf
from absl import logging

from electra_tf.training import distribution, seeds
from electra_tf.training import model_dir as model_dir_lib


class NonFiniteLossError(RuntimeError):
    """The loss or the weights became NaN or infinite; the last good checkpoint is kept."""


@dataclasses.dataclass
class LoopSettings:
    model_dir: str
    num_train_steps: int
    iterations_per_loop: int = 200
    save_checkpoints_steps: int = 1000
    keep_checkpoint_max: int = 5
    seed: int = 0
    jit_compile: bool = False
    global_batch_size: int = 1
    tokens_per_example: int = 1
    # Model FLOPs of one training example (forward + backward, `modeling.flops`); 0: not logged.
    flops_per_example: float = 0.0
    summary_dir: str = None
    # Log (and write summaries) every this many steps, averaged over them; None: every host loop.
    # A host loop ends at each logging step. Host-loop boundaries depend on steps only (never on
    # time): the same step run inside a longer or shorter host loop can round differently, and a
    # resumed run must cut its loops where the uninterrupted run did to be bit-identical.
    log_every_steps: int = None

    @classmethod
    def from_config(cls, config, model_dir, num_train_steps, seed):
        """The loop settings of a pre-training or fine-tuning config (same hparam names)."""
        return cls(
            model_dir=model_dir,
            num_train_steps=num_train_steps,
            iterations_per_loop=config.iterations_per_loop,
            save_checkpoints_steps=config.save_checkpoints_steps,
            keep_checkpoint_max=config.keep_checkpoint_max,
            seed=seed,
            jit_compile=config.jit_compile,
            global_batch_size=config.train_batch_size,
            tokens_per_example=config.max_seq_length,
            log_every_steps=config.log_every_steps,
        )


class ReplicaInputs:
    """One tf.data iterator per local replica, fed to the replicas inside the train function.

    Unlike a tf.distribute distributed iterator, these are ordinary tf.data iterators, which
    checkpoints can hold: every worker saves its own under `<model_dir>/inputs/worker-<i>` at
    each checkpoint step, so the input stream resumes exactly where it stopped.
    """

    def __init__(self, strategy, dataset_fn):
        self.strategy = strategy
        local = len(strategy.extended.worker_devices)
        first = distribution.worker_index(strategy) * local
        total = strategy.num_replicas_in_sync
        self.iterators = {}
        for replica in range(first, first + local):
            context = tf.distribute.InputContext(
                num_input_pipelines=total, input_pipeline_id=replica, num_replicas_in_sync=total
            )
            self.iterators[replica] = iter(dataset_fn(context))

    def next(self):
        return self.strategy.experimental_distribute_values_from_function(
            lambda context: next(self.iterators[context.replica_id_in_sync_group])
        )

    def checkpoint(self):
        return tf.train.Checkpoint(**{f"replica_{r}": it for r, it in self.iterators.items()})


class TrainLoop:
    """Trains `model` with `optimizer` on `dataset_fn` batches under `strategy`.

    Args:
      loss_fn: (features, seed [2] int64, training) -> (scalar loss, {name: scalar}) for one
        replica's batch; the scalars are averaged over steps and replicas for logging.
      dataset_fn: tf.distribute `InputContext` -> per-replica tf.data.Dataset.
    """

    def __init__(self, strategy, model, optimizer, loss_fn, dataset_fn, settings):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.settings = settings
        self.is_chief = distribution.is_chief(strategy)
        worker = distribution.worker_index(strategy)
        self.inputs = ReplicaInputs(strategy, dataset_fn)
        keep = settings.keep_checkpoint_max or None
        self.checkpoint = model_dir_lib.new_checkpoint(model, optimizer)
        directory = settings.model_dir
        if not self.is_chief:  # other workers write a throw-away copy, as MultiWorkerMirrored needs
            directory = f"{settings.model_dir.rstrip('/')}/.worker_{worker}"
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, directory, max_to_keep=keep, step_counter=optimizer.iterations
        )
        self.input_manager = tf.train.CheckpointManager(
            self.inputs.checkpoint(),
            f"{settings.model_dir.rstrip('/')}/inputs/worker-{worker}",
            max_to_keep=keep,
            step_counter=optimizer.iterations,
        )
        self._loop_fn = self._make_loop_fn()
        self._writer = None
        if self.is_chief:
            self._writer = tf.summary.create_file_writer(settings.summary_dir or settings.model_dir)

    def restore(self):
        """Restores the newest checkpoint whose weights are all finite; returns the global step.

        A checkpoint with NaN or infinite weights (written by a diverged run of an older version)
        is skipped with a warning, so a resumed run never starts from broken weights.
        """
        for path in reversed(self._checkpoints()):
            self.checkpoint.restore(path).assert_existing_objects_matched()
            if self._weights_finite():
                step = int(self.optimizer.iterations.numpy())
                inputs = f"{self.input_manager.directory}/ckpt-{step}"
                if tf.io.gfile.exists(inputs + ".index"):
                    self.input_manager.checkpoint.restore(inputs).assert_consumed()
                else:
                    logging.warning(
                        "No input position saved for step %d: the data stream starts over.", step
                    )
                logging.info("Restored %s at step %d", path, step)
                return step
            logging.warning("Skipping %s: its weights are not finite.", path)
        if self._checkpoints():
            raise NonFiniteLossError(
                f"Every checkpoint in {self.settings.model_dir} holds non-finite weights; move "
                "them away to train from the start."
            )
        return int(self.optimizer.iterations.numpy())

    def _checkpoints(self):
        state = tf.train.get_checkpoint_state(self.settings.model_dir)
        return list(state.all_model_checkpoint_paths) if state else []

    def _weights_finite(self):
        return all(
            bool(tf.reduce_all(tf.math.is_finite(v))) for v in self.model.trainable_variables
        )

    def _make_loop_fn(self):
        strategy, settings = self.strategy, self.settings
        model, optimizer, loss_fn = self.model, self.optimizer, self.loss_fn
        num_replicas = strategy.num_replicas_in_sync

        def replica_step(features, step):
            seed = seeds.step_seed(settings.seed, step)
            with tf.GradientTape() as tape:
                loss, scalars = loss_fn(features, seed, True)
                scaled_loss = loss / num_replicas  # the optimizer sums gradients over replicas
            variables = model.trainable_variables
            grads = tape.gradient(scaled_loss, variables)
            optimizer.apply(grads, variables)
            scalars = dict(scalars, loss=loss)
            return {k: tf.cast(v, tf.float32) for k, v in scalars.items()}

        if settings.jit_compile:
            replica_step = tf.function(replica_step, jit_compile=True)

        return self._build_loop(replica_step)

    def _build_loop(self, replica_step):
        strategy, optimizer, inputs = self.strategy, self.optimizer, self.inputs

        @tf.function
        def loop(num_steps):
            def one_step():
                step = tf.identity(optimizer.iterations.value)
                per_replica = strategy.run(replica_step, args=(inputs.next(), step))
                return {k: strategy.reduce("MEAN", v, axis=None) for k, v in per_replica.items()}

            sums = one_step()
            non_finite = tf.cast(~tf.math.is_finite(sums["loss"]), tf.int32)
            for _ in tf.range(num_steps - 1):
                scalars = one_step()
                non_finite += tf.cast(~tf.math.is_finite(scalars["loss"]), tf.int32)
                sums = {k: sums[k] + scalars[k] for k in sums}
            return {k: v / tf.cast(num_steps, tf.float32) for k, v in sums.items()}, non_finite

        return loop

    def train(self, stop_at=None):
        """Runs until `num_train_steps` (or the checkpoint at/after `stop_at`), checkpointing and
        logging; returns the last loop's means."""
        settings = self.settings
        step = self.restore()
        if step >= settings.num_train_steps:
            logging.info("Already trained %d of %d steps.", step, settings.num_train_steps)
            return {}
        start_step, start_time = step, time.time()
        means = {}
        every = settings.log_every_steps
        window, window_steps, window_start = {}, 0, None  # what the next log line averages
        while step < settings.num_train_steps:
            next_save = (
                step // settings.save_checkpoints_steps + 1
            ) * settings.save_checkpoints_steps
            num_steps = min(
                settings.iterations_per_loop, next_save - step, settings.num_train_steps - step
            )
            if every:  # a host loop ends at each logging step
                num_steps = min(num_steps, (step // every + 1) * every - step)
            loop_start = time.time()
            window_start = window_start or loop_start
            means, non_finite = self._loop_fn(tf.constant(num_steps))
            means = {k: float(v) for k, v in means.items()}
            if int(non_finite) or not math.isfinite(means["loss"]):
                raise NonFiniteLossError(
                    f"Loss became non-finite between steps {step} and {step + num_steps} "
                    f"(mean loss {means['loss']}). Stopped without saving: the last good checkpoint in "
                    f"{settings.model_dir} is kept. Lower the learning rate or check the data."
                )
            step = int(self.optimizer.iterations.numpy())
            window = {k: window.get(k, 0.0) + v * num_steps for k, v in means.items()}
            window_steps += num_steps
            stopping = stop_at is not None and step >= stop_at
            finished = step >= settings.num_train_steps or stopping
            if not every or step % every == 0 or finished:
                window_means = {k: v / window_steps for k, v in window.items()}
                seconds = time.time() - window_start
                self._log(step, window_means, window_steps, seconds, start_step, start_time)
                window, window_steps, window_start = {}, 0, None
            if step % settings.save_checkpoints_steps == 0 or step >= settings.num_train_steps:
                self.save()
                if stop_at is not None and step >= stop_at:
                    break
        return means

    def save(self):
        """Checkpoints the model, optimizer and input positions; refuses non-finite weights (the
        update that breaks them can come before the loss shows it)."""
        if not self._weights_finite():
            raise NonFiniteLossError(
                f"The weights became non-finite by step {int(self.optimizer.iterations.numpy())}; "
                f"not saved: the last good checkpoint in {self.settings.model_dir} "
                f"({self.manager.latest_checkpoint}) is kept. Lower the learning rate or check "
                "the data."
            )
        # The input position first: the model checkpoint is what marks a step as saved, so a
        # run killed between the two writes resumes from the previous, complete pair.
        self.input_manager.save(checkpoint_number=self.optimizer.iterations)
        path = self.manager.save(checkpoint_number=self.optimizer.iterations)
        if not self.is_chief:
            tf.io.gfile.rmtree(self.manager.directory)
        logging.info("Saved checkpoint %s", path)

    def _log(self, step, means, num_steps, seconds, start_step, start_time):
        settings = self.settings
        steps_per_s = num_steps / max(seconds, 1e-9)
        examples_per_s = steps_per_s * settings.global_batch_size
        overall = (step - start_step) / max(time.time() - start_time, 1e-9)
        eta = (settings.num_train_steps - step) / max(overall, 1e-9)
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(means.items()))
        if self.is_chief:
            tflops = examples_per_s * settings.flops_per_example / 1e12
            logging.info(
                "step %d/%d (%.0f%%): %s | %.2f steps/s, %.1f examples/s, %.0f tokens/s%s, ETA %s",
                step,
                settings.num_train_steps,
                100.0 * step / settings.num_train_steps,
                metrics,
                steps_per_s,
                examples_per_s,
                examples_per_s * settings.tokens_per_example,
                f", {tflops:.4g} model TFLOP/s" if settings.flops_per_example else "",
                _format_seconds(eta),
            )
            with self._writer.as_default(step=step):
                for k, v in means.items():
                    tf.summary.scalar(f"train/{k}", v)
                tf.summary.scalar("train/examples_per_second", examples_per_s)
                if settings.flops_per_example:
                    tf.summary.scalar("train/model_tflops_per_second", tflops)
                lr = self.optimizer.learning_rate
                lr = lr(step) if callable(lr) else tf.convert_to_tensor(lr)
                tf.summary.scalar("train/learning_rate", float(lr))
            self._writer.flush()


def _format_seconds(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
