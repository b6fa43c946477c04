"""Choosing a tf.distribute strategy at start-up: TPU, multi-GPU, multi-worker or CPU, one code path."""

import json
import os

import keras
import tensorflow as tf
from absl import logging

# Values of the `strategy` and `mixed_precision` hparams of both configs.
STRATEGIES = ("auto", "tpu", "mirrored", "multi_worker", "cpu")
MIXED_PRECISION_POLICIES = (None, "bfloat16")


def create_strategy(kind="auto", tpu_name=None, tpu_zone=None, gcp_project=None, use_tpu=False):
    """Returns the strategy every later step (model, optimizer, data, loop) runs under.

    kind: "auto" picks TPU when `use_tpu`/`tpu_name` is set, MultiWorkerMirroredStrategy when
    TF_CONFIG names several workers, MirroredStrategy over several local GPUs (or several logical
    CPUs, as the tests use), else one device. `tpu_name="local"` is the TPU VM's own TPU.
    """
    if kind == "auto":
        kind = _auto_kind(use_tpu or bool(tpu_name))
    if kind == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=tpu_name or "local", zone=tpu_zone, project=gcp_project
        )
        if (tpu_name or "local") != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    elif kind == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
    elif kind == "single_gpu":
        strategy = tf.distribute.MirroredStrategy(devices=["/gpu:0"])
    elif kind == "cpu":  # a one-device MirroredStrategy: the same code path as several devices
        strategy = tf.distribute.MirroredStrategy(devices=["/cpu:0"])
    else:
        raise ValueError(
            f"Unknown strategy {kind!r}; use auto, tpu, mirrored, multi_worker or cpu."
        )
    logging.info(
        "Distribution: %s with %d replica(s)",
        type(strategy).__name__,
        strategy.num_replicas_in_sync,
    )
    return strategy


def strategy_for(config, strategy=None, batch_size_keys=()):
    """The run's precision policy and strategy from a config's `mixed_precision`, `strategy` and
    TPU hparams (or the given `strategy`); refuses batch sizes the replicas cannot split."""
    set_precision_policy(config.mixed_precision)
    strategy = strategy or create_strategy(
        config.strategy, config.tpu_name, config.tpu_zone, config.gcp_project, config.use_tpu
    )
    replicas = strategy.num_replicas_in_sync
    for key in batch_size_keys:
        if getattr(config, key) % replicas:
            raise ValueError(
                f"hparam {key!r} ({getattr(config, key)}) must be a multiple of the {replicas} "
                "replicas"
            )
    return strategy


def _auto_kind(want_tpu):
    if want_tpu:
        return "tpu"
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    if sum(len(v) for k, v in cluster.items() if k in ("worker", "chief")) > 1:
        return "multi_worker"
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return "mirrored"
    if len(gpus) == 1:
        return "single_gpu"
    return "cpu"


def is_chief(strategy):
    """Whether this process writes logs, summaries and results (worker 0 / the only one)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_index(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_id is None:
        return 0
    return int(resolver.task_id)


def set_precision_policy(mixed_precision):
    """Keras's global dtype policy for a run: None (float32) or "bfloat16" (mixed_bfloat16).

    Set before the model is built; shared by pre-training and fine-tuning.
    """
    keras.mixed_precision.set_global_policy(
        {None: "float32", "bfloat16": "mixed_bfloat16"}[mixed_precision]
    )
