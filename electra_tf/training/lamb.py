"""LAMB as MobileBERT's original trains with it, including its progressive layer-wise schedule.

`keras.optimizers.Lamb` is a different algorithm from the one the original distillation code
uses: Keras corrects Adam's bias, applies weight decay outside the trust ratio, adapts every
variable and knows no layer-wise warm-up. `Lamb` here is the original's update on top of the
project's `AdamWeightDecay` (global-norm clipping, name-based weight-decay exclusion):

    m = gate * (beta_1 * m + (1 - beta_1) * g)
    v = gate * (beta_2 * v + (1 - beta_2) * g * g)
    update = m / (sqrt(v) + epsilon) + gate * weight_decay_rate * p     # no bias correction
    ratio = ||p|| / ||update|| (1 when either is 0, or for excluded names)
    p -= layer_lr * ratio * lr * update

Without a layer-wise warm-up, gate = layer_lr = 1. With one (`steps_per_phase` > 0, stage 1 of
the distillation), only blocks (`layer_pattern`) learn: block i's layer_lr is
3 x background x (0 before its phase, 1 during, 0.1 after), where the background restarts every
phase at t = step mod steps_per_phase as min(0.9 + 0.1 sqrt(1 - t/P), 10 t/P); gate is 1 where
layer_lr > 0, so the moments of a block that has not started stay 0, and every other variable
(embeddings, head) is frozen. `reference_quirks` makes block i's phase the steps
(i P, (i + 1) P] as the original (nothing learns at step 0); the default is [i P, (i + 1) P),
matching the distillation losses' layer gates.
"""

import re

import keras
import tensorflow as tf

from electra_tf.training.optimization import AdamWeightDecay, _read, variable_path

# An encoder block's variables: "electra/layer_3/...".
DEFAULT_LAYER_PATTERN = r"(^|/)layer_(\d+)/"


@keras.saving.register_keras_serializable(package="electra_tf")
class Lamb(AdamWeightDecay):
    """The original MobileBERT code's LAMB (see the module docstring).

    Args:
      exclude_from_layer_adaptation: patterns of variables without the trust ratio; None uses
        `exclude_from_weight_decay`, as the original.
      steps_per_phase: > 0 turns on the progressive layer-wise schedule with phases this long.
      layer_pattern: regular expression whose second group is a block's index.
      reference_quirks: the original's phase boundaries (see the module docstring).
      **kwargs: `AdamWeightDecay`'s (learning_rate, weight_decay_rate, beta_1, beta_2, epsilon,
        exclude_from_weight_decay, clip_norm, ...).
    """

    def __init__(
        self,
        exclude_from_layer_adaptation=None,
        steps_per_phase=0,
        layer_pattern=DEFAULT_LAYER_PATTERN,
        reference_quirks=False,
        name="Lamb",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if exclude_from_layer_adaptation is None:
            exclude_from_layer_adaptation = self._exclude_patterns
        self._exclude_from_adaptation = tuple(exclude_from_layer_adaptation)
        self.steps_per_phase = int(steps_per_phase or 0)
        self.layer_pattern = layer_pattern
        self.reference_quirks = bool(reference_quirks)
        self._variable_adapt = ()
        self._variable_layer = ()

    def build(self, var_list):
        if self.built:
            return
        var_list = list(var_list)
        super().build(var_list)
        names = [variable_path(v) for v in var_list]
        self._variable_adapt = tuple(
            not any(re.search(p, name) for p in self._exclude_from_adaptation) for name in names
        )
        layers = []
        for name in names:
            match = re.search(self.layer_pattern, name)
            layers.append(int(match.group(2)) if match else -1)
        self._variable_layer = tuple(layers)

    def layer_learning_rate(self, layer, step):
        """The layer-wise factor (layer_lr) of block `layer` (-1: not a block) at `step`."""
        if not self.steps_per_phase:
            return tf.constant(1.0)
        if layer < 0:
            return tf.constant(0.0)
        period = self.steps_per_phase
        step = tf.cast(step, tf.int64)
        start, end = layer * period, (layer + 1) * period
        if self.reference_quirks:
            before, during = step <= start, tf.logical_and(step > start, step <= end)
        else:
            before, during = step < start, tf.logical_and(step >= start, step < end)
        value = tf.where(before, 0.0, tf.where(during, 1.0, 0.1))
        background = 1.0
        if period > 1:
            t = tf.cast(step % period, tf.float32) / float(period)
            background = tf.minimum(0.9 + 0.1 * tf.sqrt(1.0 - t), 10.0 * t)
        return 3.0 * background * value

    def update_step(self, gradient, variable, learning_rate):
        index, dtype, gradient = self._step_inputs(gradient, variable)
        lr = tf.cast(learning_rate, dtype) * self._variable_lr_multipliers[index]
        layer_lr = tf.cast(
            self.layer_learning_rate(self._variable_layer[index], self.iterations), dtype
        )
        gate = tf.cast(layer_lr > 0, dtype)
        m, v = self._momentums[index], self._velocities[index]
        param = _read(variable)
        next_m = gate * (self.beta_1 * tf.cast(_read(m), dtype) + (1.0 - self.beta_1) * gradient)
        next_v = gate * (
            self.beta_2 * tf.cast(_read(v), dtype) + (1.0 - self.beta_2) * tf.square(gradient)
        )
        update = next_m / (tf.sqrt(next_v) + self.epsilon)
        if self.weight_decay_rate > 0 and self._variable_use_weight_decay[index]:
            update += gate * self.weight_decay_rate * param
        ratio = tf.constant(1.0, dtype)
        if self._variable_adapt[index]:
            w_norm = tf.norm(param)
            g_norm = tf.norm(update)
            ratio = tf.where(w_norm > 0, tf.where(g_norm > 0, w_norm / g_norm, 1.0), 1.0)
        self.assign(variable, param - layer_lr * ratio * lr * update)
        self.assign(m, next_m)
        self.assign(v, next_v)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "exclude_from_layer_adaptation": list(self._exclude_from_adaptation),
                "steps_per_phase": self.steps_per_phase,
                "layer_pattern": self.layer_pattern,
                "reference_quirks": self.reference_quirks,
            }
        )
        return config
