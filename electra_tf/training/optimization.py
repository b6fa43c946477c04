"""Optimization for ELECTRA in Keras 3: the reference's Adam with weight decay,
its learning-rate schedule, and layer-wise learning-rate decay.

The reference (``model/optimization.py`` of google-research/electra) trains
with:

* the learning rate ``polynomial_decay(lr, step, num_train_steps, end=0,
  power=lr_decay_power) * min(1, step / warmup_steps)`` where
  ``warmup_steps = max(num_train_steps * warmup_proportion, num_warmup_steps)``
  (:class:`PolynomialDecayWithWarmup`);
* gradients clipped to a global norm of 1.0;
* ``AdamWeightDecayOptimizer``: Adam *without* bias correction plus decoupled
  weight decay added to the update, skipped for LayerNorm and bias variables
  (:class:`AdamWeightDecay`);
* for fine-tuning, a per-layer learning rate that decays from the task head
  down to the embeddings (:func:`layerwise_lr_multipliers`,
  :class:`LayerwiseLRDecay`).

Typical use (the optimizer must be created and built under the strategy's
scope, before the first ``tf.function`` call)::

    with strategy.scope():
        model = ...
        optimizer = create_optimizer(5e-4, num_train_steps, weight_decay_rate=0.01,
                                     warmup_steps=10000)
        optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=True)
    def train_step(batch):
        with tf.GradientTape() as tape:
            loss = ...
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
"""

import re

import keras
import tensorflow as tf

__all__ = [
    "AdamWeightDecay",
    "DEFAULT_EMBEDDING_PATTERNS",
    "DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY",
    "DEFAULT_LAYER_PATTERN",
    "LayerwiseLRDecay",
    "PolynomialDecayWithWarmup",
    "create_optimizer",
    "layer_depth",
    "layerwise_lr_multiplier",
    "layerwise_lr_multipliers",
    "variable_path",
]

DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")

# Variables of the embedding block (word/position/token-type embeddings, their
# LayerNorm, and the embedding -> hidden projection): the reference's
# "/embeddings/" and "/embeddings_project/" keys, plus Keras-style names.
DEFAULT_EMBEDDING_PATTERNS = (
    r"(^|/)embeddings(/|$)",
    r"(^|/)embeddings_project(/|$)",
    r"(^|/)(word|position|token_type)_embeddings(/|$)",
)
# Transformer layer i: the reference's "encoder/layer_<i>/" keys.
DEFAULT_LAYER_PATTERN = r"(^|/)layer_(\d+)(/|$)"

_REGISTER = keras.saving.register_keras_serializable(package="electra_tf")


def variable_path(variable):
    """The name used to match a variable: its Keras path, else its TF name,
    without a trailing ``:0``."""
    if isinstance(variable, str):
        name = variable
    else:
        name = getattr(variable, "path", None) or variable.name
    return re.sub(r":\d+$", "", name)


# ---------------------------------------------------------------------------
# Learning-rate schedule
# ---------------------------------------------------------------------------


@_REGISTER
class PolynomialDecayWithWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """The reference's learning rate: polynomial decay times linear warmup.

    ``lr(step) = ((learning_rate - end_learning_rate)
                  * (1 - min(step, num_train_steps) / num_train_steps) ** lr_decay_power
                  + end_learning_rate) * min(1, step / warmup_steps)``

    with ``warmup_steps = max(num_train_steps * warmup_proportion,
    num_warmup_steps)`` (``tf.compat.v1.train.polynomial_decay`` with
    ``cycle=False`` followed by the reference's warmup factor). When
    ``warmup_steps`` is 0 there is no warmup (the reference would divide by
    zero). Note that, as in the reference, the learning rate at step 0 is 0 when
    there is a warmup.
    """

    def __init__(
        self,
        learning_rate,
        num_train_steps,
        num_warmup_steps=0,
        lr_decay_power=1.0,
        warmup_proportion=0.0,
        end_learning_rate=0.0,
        name=None,
    ):
        if num_train_steps is None or num_train_steps <= 0:
            raise ValueError("num_train_steps must be > 0, got %r" % (num_train_steps,))
        self.learning_rate = float(learning_rate)
        self.num_train_steps = int(num_train_steps)
        self.num_warmup_steps = num_warmup_steps or 0
        self.lr_decay_power = float(lr_decay_power)
        self.warmup_proportion = float(warmup_proportion or 0.0)
        self.end_learning_rate = float(end_learning_rate)
        self.name = name

    @property
    def warmup_steps(self):
        return max(self.num_train_steps * self.warmup_proportion, self.num_warmup_steps)

    def __call__(self, step):
        with tf.name_scope(self.name or "PolynomialDecayWithWarmup"):
            step = tf.cast(step, tf.float32)
            decay_steps = tf.constant(float(self.num_train_steps), tf.float32)
            fraction = tf.minimum(step, decay_steps) / decay_steps
            lr = (self.learning_rate - self.end_learning_rate) * tf.pow(
                1.0 - fraction, self.lr_decay_power
            ) + self.end_learning_rate
            warmup_steps = float(self.warmup_steps)
            if warmup_steps > 0:
                lr *= tf.minimum(1.0, step / warmup_steps)
            return lr

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "num_train_steps": self.num_train_steps,
            "num_warmup_steps": self.num_warmup_steps,
            "lr_decay_power": self.lr_decay_power,
            "warmup_proportion": self.warmup_proportion,
            "end_learning_rate": self.end_learning_rate,
            "name": self.name,
        }


# ---------------------------------------------------------------------------
# Layer-wise learning-rate decay
# ---------------------------------------------------------------------------


def layer_depth(
    name,
    n_layers,
    embedding_patterns=DEFAULT_EMBEDDING_PATTERNS,
    layer_pattern=DEFAULT_LAYER_PATTERN,
):
    """Depth of a variable for layer-wise learning-rate decay.

    0 for the embeddings (``embedding_patterns``), ``i + 1`` for transformer
    layer ``i`` (first group of ``layer_pattern`` holding the digits, or its
    only group), and ``n_layers + 1`` for everything else (the task-specific
    head).
    """
    name = variable_path(name)
    for pattern in embedding_patterns:
        if re.search(pattern, name):
            return 0
    match = re.search(layer_pattern, name)
    if match:
        digits = [g for g in match.groups() if g is not None and g.isdigit()]
        layer = int(digits[0])
        if layer >= n_layers:
            raise ValueError(
                "Variable %s is in layer %d but n_layers is %d" % (name, layer, n_layers)
            )
        return layer + 1
    return n_layers + 1


def layerwise_lr_multiplier(
    name,
    n_layers,
    layer_decay,
    layerwise_lr_decay_reference_bug=False,
    embedding_patterns=DEFAULT_EMBEDDING_PATTERNS,
    layer_pattern=DEFAULT_LAYER_PATTERN,
):
    """Learning-rate multiplier of one variable; see :func:`layerwise_lr_multipliers`."""
    if layer_decay is None or layer_decay <= 0:
        return 1.0
    depth = layer_depth(name, n_layers, embedding_patterns, layer_pattern)
    top = n_layers + 2 if layerwise_lr_decay_reference_bug else n_layers + 1
    if depth == n_layers + 1:  # task-specific head
        depth = top
    return float(layer_decay) ** (top - depth)


def layerwise_lr_multipliers(
    variables,
    n_layers,
    layer_decay,
    layerwise_lr_decay_reference_bug=False,
    embedding_patterns=DEFAULT_EMBEDDING_PATTERNS,
    layer_pattern=DEFAULT_LAYER_PATTERN,
):
    """Per-variable learning-rate multipliers for layer-wise decay.

    Layers closer to the input learn more slowly. With ``n_layers`` transformer
    layers and decay ``d``:

    * default (the paper, and what the reference's authors intended; see
      google-research/electra issue #51): the task head counts as one more layer
      on top of the transformer, so the task head gets ``1``, transformer layer
      ``i`` (0-based) gets ``d ** (n_layers - i)`` (the top layer ``d``) and the
      embeddings get ``d ** (n_layers + 1)``.
    * ``layerwise_lr_decay_reference_bug=True`` reproduces the released code,
      which still counts the pooler that was removed with next-sentence
      prediction: the task head gets ``1``, layer ``i`` gets
      ``d ** (n_layers + 1 - i)`` (the top layer ``d ** 2``) and the embeddings
      ``d ** (n_layers + 2)``.

    ``layer_decay <= 0`` (or None) disables the decay (all multipliers 1), as in
    the reference.

    Args:
      variables: variables (matched by Keras path / TF name) or names.
      n_layers: number of transformer layers.
      layer_decay: the decay factor (``layerwise_lr_decay`` of the fine-tuning
        config, 0.8 by default there).
      layerwise_lr_decay_reference_bug: reproduce the reference's extra decay.
      embedding_patterns, layer_pattern: regular expressions recognising the
        embedding variables and the transformer layer index.

    Returns:
      A dict mapping each variable's path to its multiplier.
    """
    return {
        variable_path(v): layerwise_lr_multiplier(
            v,
            n_layers,
            layer_decay,
            layerwise_lr_decay_reference_bug,
            embedding_patterns,
            layer_pattern,
        )
        for v in variables
    }


@_REGISTER
class LayerwiseLRDecay:
    """Serializable callable ``variable -> multiplier`` for layer-wise decay.

    Pass it as ``lr_multipliers`` to :class:`AdamWeightDecay`; see
    :func:`layerwise_lr_multipliers` for the two semantics.
    """

    def __init__(
        self,
        n_layers,
        layer_decay,
        layerwise_lr_decay_reference_bug=False,
        embedding_patterns=DEFAULT_EMBEDDING_PATTERNS,
        layer_pattern=DEFAULT_LAYER_PATTERN,
    ):
        self.n_layers = int(n_layers)
        self.layer_decay = layer_decay
        self.layerwise_lr_decay_reference_bug = bool(layerwise_lr_decay_reference_bug)
        self.embedding_patterns = tuple(embedding_patterns)
        self.layer_pattern = layer_pattern

    def __call__(self, variable):
        return layerwise_lr_multiplier(
            variable,
            self.n_layers,
            self.layer_decay,
            self.layerwise_lr_decay_reference_bug,
            self.embedding_patterns,
            self.layer_pattern,
        )

    def get_config(self):
        return {
            "n_layers": self.n_layers,
            "layer_decay": self.layer_decay,
            "layerwise_lr_decay_reference_bug": self.layerwise_lr_decay_reference_bug,
            "embedding_patterns": list(self.embedding_patterns),
            "layer_pattern": self.layer_pattern,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# ---------------------------------------------------------------------------
# Optimizer
# ---------------------------------------------------------------------------


@_REGISTER
class AdamWeightDecay(keras.optimizers.Optimizer):
    """The reference's ``AdamWeightDecayOptimizer`` as a Keras 3 optimizer.

    For each variable ``p`` with gradient ``g`` (after clipping all gradients
    to a global norm of ``clip_norm``, like the reference's
    ``tf.clip_by_global_norm(grads, 1.0)``)::

        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        update = m / (sqrt(v) + epsilon)          # no bias correction
        update += weight_decay_rate * p           # unless the name matches
                                                  # exclude_from_weight_decay
        p -= lr * multiplier(p) * update

    Args:
      learning_rate: float, ``LearningRateSchedule`` (e.g.
        :class:`PolynomialDecayWithWarmup`) or callable.
      weight_decay_rate: decoupled weight decay.
      beta_1, beta_2, epsilon: Adam constants (reference: 0.9, 0.999, 1e-6).
      exclude_from_weight_decay: regular expressions; variables whose path
        matches one of them get no weight decay (reference: LayerNorm,
        layer_norm, bias).
      clip_norm: global-norm clipping threshold (None or 0 disables it). The
        clipping is applied to the gradients summed over replicas, so the
        result does not depend on the number of devices.
      lr_multipliers: per-variable learning-rate multipliers (e.g. layer-wise
        decay): None, a dict mapping variable paths to multipliers (missing
        paths get 1), or a callable ``variable -> multiplier`` such as
        :class:`LayerwiseLRDecay`. Resolved once, in :meth:`build`.
      **kwargs: other ``keras.optimizers.Optimizer`` arguments (``name``,
        ``loss_scale_factor``, ``gradient_accumulation_steps`` ...).

    Slot variables are created by :meth:`build`; under a distribution strategy
    create the optimizer and call ``optimizer.build(trainable_variables)``
    inside ``strategy.scope()`` before the first ``tf.function`` step (Keras
    would otherwise create them lazily inside the replica function, which
    ``MirroredStrategy`` does not allow).
    """

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay_rate=0.0,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        exclude_from_weight_decay=DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY,
        clip_norm=1.0,
        lr_multipliers=None,
        name="AdamWeightDecay",
        **kwargs,
    ):
        if kwargs.get("weight_decay"):
            raise ValueError(
                "Use weight_decay_rate (decoupled, as in the reference) "
                "instead of Keras' weight_decay"
            )
        kwargs.pop("weight_decay", None)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.weight_decay_rate = float(weight_decay_rate or 0.0)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self._exclude_patterns = tuple(exclude_from_weight_decay or ())
        self.clip_norm = clip_norm
        if isinstance(lr_multipliers, dict) and set(lr_multipliers) >= {"class_name", "config"}:
            lr_multipliers = keras.saving.deserialize_keras_object(lr_multipliers)
        if lr_multipliers is not None and not (
            isinstance(lr_multipliers, dict) or callable(lr_multipliers)
        ):
            raise ValueError("lr_multipliers must be None, a dict or a callable")
        self._lr_multipliers = lr_multipliers
        self._variable_lr_multipliers = ()
        self._variable_use_weight_decay = ()

    # -- per-variable settings ---------------------------------------------

    def _do_use_weight_decay(self, param_name):
        """Whether to use weight decay for ``param_name`` (as the reference)."""
        if not self.weight_decay_rate:
            return False
        for r in self._exclude_patterns:
            if re.search(r, param_name) is not None:
                return False
        return True

    def _lr_multiplier_for(self, variable):
        spec = self._lr_multipliers
        if spec is None:
            return 1.0
        if isinstance(spec, dict):
            return float(spec.get(variable_path(variable), 1.0))
        return float(spec(variable))

    def lr_multiplier(self, variable):
        """The learning-rate multiplier used for ``variable`` (after build)."""
        return self._variable_lr_multipliers[self._get_variable_index(variable)]

    def use_weight_decay(self, variable):
        """Whether ``variable`` gets weight decay (after build)."""
        return self._variable_use_weight_decay[self._get_variable_index(variable)]

    # -- Keras optimizer API -------------------------------------------------

    def build(self, var_list):
        """Creates the ``adam_m`` / ``adam_v`` slots for ``var_list``.

        Call it under the distribution strategy's scope before the first
        ``tf.function`` step; later calls are no-ops.
        """
        if self.built:
            return
        var_list = list(var_list)
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["adam_m", "adam_v"]
        )
        self._variable_lr_multipliers = tuple(self._lr_multiplier_for(v) for v in var_list)
        self._variable_use_weight_decay = tuple(
            self._do_use_weight_decay(variable_path(v)) for v in var_list
        )

    def apply(self, grads, trainable_variables=None):
        if (
            not self.built
            and tf.inside_function()
            and tf.distribute.has_strategy()
            and not tf.distribute.in_cross_replica_context()
        ):
            raise RuntimeError(
                "%s was not built before a distributed tf.function step: call "
                "optimizer.build(model.trainable_variables) under strategy.scope() "
                "first" % type(self).__name__
            )
        return super().apply(grads, trainable_variables)

    def _clip_by_global_norm(self, grads):
        if not self.clip_norm or self.clip_norm <= 0:
            return list(grads)
        present = [g for g in grads if g is not None]
        if not present:
            return list(grads)
        clipped, _ = tf.clip_by_global_norm(present, self.clip_norm)
        clipped = iter(clipped)
        return [None if g is None else next(clipped) for g in grads]

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        if not hasattr(self, "_all_reduce_sum_gradients"):  # not the TF backend
            super()._backend_update_step(
                self._clip_by_global_norm(grads), trainable_variables, learning_rate
            )
            return
        # As the TF backend does, but clip after summing over replicas.
        tvars = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
        grads_and_vars = self._all_reduce_sum_gradients(list(zip(grads, tvars)))
        grads = self._clip_by_global_norm([g for g, _ in grads_and_vars])
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_tf_update_step,
            self._distribution_strategy,
            list(zip(grads, tvars)),
            learning_rate,
        )

    def _step_inputs(self, gradient, variable):
        """What an update of `variable` starts from: its index among the optimizer's variables,
        its dtype and `gradient` as a dense tensor of that dtype."""
        dtype = variable.dtype
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        return self._get_variable_index(variable), dtype, tf.cast(gradient, dtype)

    def update_step(self, gradient, variable, learning_rate):
        """The reference's update for one variable."""
        index, dtype, gradient = self._step_inputs(gradient, variable)
        lr = tf.cast(learning_rate, dtype)
        multiplier = self._variable_lr_multipliers[index]
        if multiplier != 1.0:
            lr = lr * multiplier
        m = self._momentums[index]
        v = self._velocities[index]
        m_value = tf.cast(_read(m), dtype)
        v_value = tf.cast(_read(v), dtype)

        next_m = self.beta_1 * m_value + (1.0 - self.beta_1) * gradient
        next_v = self.beta_2 * v_value + (1.0 - self.beta_2) * tf.square(gradient)
        update = next_m / (tf.sqrt(next_v) + self.epsilon)
        if self.weight_decay_rate > 0 and self._variable_use_weight_decay[index]:
            update += self.weight_decay_rate * _read(variable)
        self.assign(variable, _read(variable) - lr * update)
        self.assign(m, next_m)
        self.assign(v, next_v)

    def get_config(self):
        config = super().get_config()
        config.pop("weight_decay", None)
        spec = self._lr_multipliers
        if isinstance(spec, dict):
            spec = {str(k): float(v) for k, v in spec.items()}
        elif spec is not None:
            spec = (
                keras.saving.serialize_keras_object(spec) if hasattr(spec, "get_config") else None
            )
        config.update(
            {
                "weight_decay_rate": self.weight_decay_rate,
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "exclude_from_weight_decay": list(self._exclude_patterns),
                "clip_norm": self.clip_norm,
                "lr_multipliers": spec,
            }
        )
        return config


def _read(variable):
    """Current value of a Keras or TF variable as a tensor."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return tf.convert_to_tensor(variable)


def create_optimizer(
    learning_rate,
    num_train_steps,
    weight_decay_rate=0.0,
    warmup_steps=0,
    warmup_proportion=0,
    lr_decay_power=1.0,
    layerwise_lr_decay_power=-1,
    n_transformer_layers=None,
    layerwise_lr_decay_reference_bug=False,
    clip_norm=1.0,
    **kwargs,
):
    """The reference's ``create_optimizer`` settings as an :class:`AdamWeightDecay`.

    Schedule: :class:`PolynomialDecayWithWarmup`; Adam constants 0.9 / 0.999 /
    1e-6; no weight decay for LayerNorm / bias; global-norm clipping at
    ``clip_norm``; layer-wise decay when ``layerwise_lr_decay_power > 0`` (see
    :func:`layerwise_lr_multipliers`).
    """
    schedule = PolynomialDecayWithWarmup(
        learning_rate,
        num_train_steps,
        num_warmup_steps=warmup_steps,
        lr_decay_power=lr_decay_power,
        warmup_proportion=warmup_proportion,
    )
    lr_multipliers = kwargs.pop("lr_multipliers", None)
    if layerwise_lr_decay_power is not None and layerwise_lr_decay_power > 0:
        if lr_multipliers is not None:
            raise ValueError("Pass either lr_multipliers or layerwise_lr_decay_power")
        if n_transformer_layers is None:
            raise ValueError("layer-wise learning-rate decay needs n_transformer_layers")
        lr_multipliers = LayerwiseLRDecay(
            n_transformer_layers,
            layerwise_lr_decay_power,
            layerwise_lr_decay_reference_bug=layerwise_lr_decay_reference_bug,
        )
    return AdamWeightDecay(
        learning_rate=schedule,
        weight_decay_rate=weight_decay_rate,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        exclude_from_weight_decay=DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY,
        clip_norm=clip_norm,
        lr_multipliers=lr_multipliers,
        **kwargs,
    )
