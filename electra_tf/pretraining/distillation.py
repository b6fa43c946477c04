"""MobileBERT's distillation losses, as pure functions of teacher and student outputs.

Stage 1, progressive layer-wise knowledge transfer (`--layer_wise_warmup`): the distillation
steps are split into one phase per layer and only the current phase's layer contributes (the
"layer gate"). Per gated layer l (block outputs, the embedding output excluded):
  feature map:  MSE(LN(teacher_l), LN(student_l))                    x hidden_distill_factor
  attention:    teacher softmax vs student softmax of the scores      x attention_distill_factor
  mean:         mean over positions of (mean_t - mean_s)^2            x beta_distill_factor
  variance:     mean over positions of |var_t - var_s|                x gamma_distill_factor
each summed over layers and divided by the number of layers (LN: parameter-free, eps 1e-12).
Stage 2, pre-training distillation: masked-LM cross-entropy against
`ratio x one-hot + (1 - ratio) x teacher distribution`.

`reference_quirks=True` reproduces ymcui/Chinese-MobileBERT's (= google-research MobileBERT's)
`run_pretraining.py` exactly, quirks included; the default corrects them:
| quirk (reference_quirks=True)                         | corrected (default)                  |
| ----------------------------------------------------- | ------------------------------------ |
| layer l's gate is 1 for l*P < step <= (l+1)*P, so     | 1 for l*P <= step < (l+1)*P          |
| nothing is trained at step 0 (P = steps per phase)    |                                      |
| mean/variance transfer takes the teacher's statistics | the matching teacher layer's         |
| over the stacked list of all its layers (embedding    |                                      |
| output included), broadcast against student layer l   |                                      |
| attention term is the cross-entropy                   | the KL divergence (same gradient,    |
| -sum p_t log q_s (never reaches 0)                    | 0 when the student matches)          |
| teacher distribution = softmax(head(T x sequence      | softmax(head(sequence output) / T),  |
| output)): T scales the hidden states, not the logits  | the usual temperature                |
"""

import dataclasses

import tensorflow as tf

from electra_tf.modeling.heads import gather_positions

_LN_EPS = 1e-12


# Stage 1's weights in the original's `run.pretrain.sh`.
ORIGINAL_TRANSFER_FACTORS = dict(
    hidden_distill_factor=100.0,
    attention_distill_factor=1.0,
    beta_distill_factor=5000.0,
    gamma_distill_factor=5.0,
)


@dataclasses.dataclass
class DistillationConfig:
    """The original's distillation flags (`run.pretrain.sh`), by their names and with their
    defaults (`distiller.DistillationHParams` takes both from here).

    Args:
      layer_wise_warmup: stage 1 (progressive layer-wise transfer) for the first
        `num_distill_steps` steps, then stage 2; when false, stage 2 throughout.
      num_distill_steps: length of stage 1, one equal phase per student block.
      distill_temperature: temperature of the teacher's distribution in stage 2.
      distill_ground_truth_ratio: weight of the one-hot labels in stage 2's targets.
      attention_distill_factor, hidden_distill_factor, beta_distill_factor,
        gamma_distill_factor: stage 1's weights (0 switches a term off; the mean/variance
        terms need both beta and gamma).
      reference_quirks: reproduce the original's quirks (module docstring).
    """

    layer_wise_warmup: bool = False
    num_distill_steps: int = 100000
    distill_temperature: float = 1.0
    distill_ground_truth_ratio: float = 1.0
    attention_distill_factor: float = 0.0
    hidden_distill_factor: float = 0.0
    beta_distill_factor: float = 0.0
    gamma_distill_factor: float = 0.0
    reference_quirks: bool = False

    def __post_init__(self):
        if self.num_distill_steps < 1:
            raise ValueError(f"num_distill_steps must be >= 1, got {self.num_distill_steps}.")
        if not 0.0 <= self.distill_ground_truth_ratio <= 1.0:
            raise ValueError(
                f"distill_ground_truth_ratio must be in [0, 1], got "
                f"{self.distill_ground_truth_ratio}."
            )
        if self.distill_temperature <= 0.0:
            raise ValueError(f"distill_temperature must be > 0, got {self.distill_temperature}.")


def steps_per_phase(num_distill_steps, num_layers):
    """Steps given to each layer's phase (the original's integer division)."""
    return num_distill_steps // num_layers


def layer_gate(step, layer, phase_steps, reference_quirks=False):
    """1.0 while `layer`'s phase of the progressive transfer is on at global `step`, else 0.0."""
    step = tf.cast(step, tf.int64)
    start, end = layer * phase_steps, (layer + 1) * phase_steps
    if reference_quirks:
        on = tf.logical_and(step > start, step <= end)
    else:
        on = tf.logical_and(step >= start, step < end)
    return tf.cast(on, tf.float32)


def _layer_norm(x):
    # Parameter-free LayerNorm over the last axis (the original's untrained gamma=1, beta=0).
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return (x - mean) * tf.math.rsqrt(variance + _LN_EPS)


def _moments(x):
    # [..., H] -> mean, variance [..., 1] as the original computes them.
    mean = tf.reduce_mean(x, axis=-1, keepdims=True)
    variance = tf.reduce_mean(tf.math.squared_difference(x, mean), axis=-1, keepdims=True)
    return mean, variance


def attention_transfer(teacher_scores, student_scores, reference_quirks=False):
    """Mean over [B, N, T] of the per-row divergence between attention distributions.

    Args:
      teacher_scores, student_scores: [B, N, T, T] pre-softmax scores (padding adder in).
      reference_quirks: the original's cross-entropy instead of the KL divergence.
    """
    teacher_log_probs = tf.nn.log_softmax(tf.stop_gradient(teacher_scores), axis=-1)
    student_log_probs = tf.nn.log_softmax(student_scores, axis=-1)
    teacher_probs = tf.exp(teacher_log_probs)
    if reference_quirks:
        per_row = -tf.reduce_sum(teacher_probs * student_log_probs, axis=-1)  # [B, N, T]
    else:
        per_row = tf.reduce_sum(teacher_probs * (teacher_log_probs - student_log_probs), axis=-1)
    return tf.reduce_mean(per_row)


def progressive_transfer_losses(
    teacher_hiddens,
    student_hiddens,
    teacher_attention_scores,
    student_attention_scores,
    step,
    num_distill_steps,
    hidden_distill_factor=0.0,
    attention_distill_factor=0.0,
    beta_distill_factor=0.0,
    gamma_distill_factor=0.0,
    reference_quirks=False,
):
    """Stage 1's losses at global `step`, each already multiplied by its factor.

    Args:
      teacher_hiddens, student_hiddens: [embedding output, block 1 output, ...], [B, T, H] each
        (the encoders' `[embedding_output] + encoder_outputs`); same H and number of blocks.
      teacher_attention_scores, student_attention_scores: per block, [B, N, T, T] pre-softmax.
      step: the global step (int or scalar tensor).
      num_distill_steps: length of stage 1, split evenly into one phase per block.
      *_distill_factor: the original's flags. As there, a zero hidden factor switches the
        feature-map term off, and the mean/variance terms need both beta and gamma non-zero.
      reference_quirks: reproduce the original's quirks (see the module docstring).

    Returns:
      {"feature_map_transfer_loss", "attention_transfer_loss", "mean_transfer_loss",
       "variance_transfer_loss", "loss" (their sum)}, float32 scalars.
    """
    num_layers = len(student_hiddens) - 1
    if len(teacher_hiddens) != len(student_hiddens):
        raise ValueError(
            f"The teacher has {len(teacher_hiddens) - 1} blocks and the student {num_layers}: "
            "progressive transfer maps them one to one."
        )
    phase = steps_per_phase(num_distill_steps, num_layers)
    gates = [layer_gate(step, layer, phase, reference_quirks) for layer in range(num_layers)]
    zero = tf.constant(0.0)
    feature_map = attention = mean_loss = variance_loss = zero
    stacked_teacher = tf.stack(teacher_hiddens) if reference_quirks else None  # [L+1, B, T, H]
    for layer in range(num_layers):
        teacher = tf.stop_gradient(tf.cast(teacher_hiddens[layer + 1], tf.float32))
        student = tf.cast(student_hiddens[layer + 1], tf.float32)
        gate = gates[layer]
        if hidden_distill_factor != 0.0:
            mse = tf.reduce_mean(tf.square(_layer_norm(teacher) - _layer_norm(student)))
            feature_map += gate * mse
        if beta_distill_factor != 0.0 and gamma_distill_factor != 0.0:
            source = tf.stop_gradient(stacked_teacher) if reference_quirks else teacher
            teacher_mean, teacher_variance = _moments(source)
            student_mean, student_variance = _moments(student)
            mean_loss += gate * tf.reduce_mean(
                tf.math.squared_difference(teacher_mean, student_mean)
            )
            variance_loss += gate * tf.reduce_mean(tf.abs(teacher_variance - student_variance))
        if attention_distill_factor != 0.0:
            attention += gate * attention_transfer(
                teacher_attention_scores[layer], student_attention_scores[layer], reference_quirks
            )
    losses = {
        "feature_map_transfer_loss": feature_map * hidden_distill_factor / num_layers,
        "attention_transfer_loss": attention * attention_distill_factor / num_layers,
        "mean_transfer_loss": mean_loss * beta_distill_factor / num_layers,
        "variance_transfer_loss": variance_loss * gamma_distill_factor / num_layers,
    }
    losses["loss"] = tf.add_n(list(losses.values()))
    return losses


def teacher_distribution(teacher_head, teacher_masked_hiddens, temperature, reference_quirks=False):
    """The teacher's soft labels at the masked positions, [..., V].

    Args:
      teacher_head: the teacher's masked-LM head (hidden states -> vocabulary logits).
      teacher_masked_hiddens: the teacher's sequence output at the masked positions, [..., H].
      temperature: `distill_temperature`.
      reference_quirks: the original's softmax(head(T x hidden)) instead of
        softmax(head(hidden) / T).
    """
    if reference_quirks:
        logits = teacher_head(temperature * teacher_masked_hiddens)
    else:
        logits = teacher_head(teacher_masked_hiddens) / temperature
    return tf.stop_gradient(tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1))


def distillation_mlm_loss(student_logits, teacher_probs, masked_lm_ids, masked_lm_weights, ratio):
    """Stage 2: masked-LM loss against `ratio x one-hot + (1 - ratio) x teacher_probs`.

    Args:
      student_logits: [B, P, V] at the masked positions.
      teacher_probs: [B, P, V] (see `teacher_distribution`); unused when ratio is 1.
      masked_lm_ids: [B, P] int true tokens; masked_lm_weights: [B, P] (0 for padding).
      ratio: `distill_ground_truth_ratio`.

    Returns:
      {"masked_lm_loss", "masked_lm_accuracy"}, weighted means over the real predictions (the
      original's denominator sum(weights) + 1e-5).
    """
    student_logits = tf.cast(student_logits, tf.float32)
    vocab_size = tf.shape(student_logits)[-1]
    labels = tf.one_hot(masked_lm_ids, vocab_size, dtype=tf.float32)
    if ratio != 1.0:
        labels = ratio * labels + (1.0 - ratio) * tf.cast(teacher_probs, tf.float32)
    log_probs = tf.nn.log_softmax(student_logits, axis=-1)
    per_prediction = -tf.reduce_sum(labels * log_probs, axis=-1)  # [B, P]
    weights = tf.cast(masked_lm_weights, tf.float32)
    denominator = tf.reduce_sum(weights) + 1e-5
    predictions = tf.argmax(student_logits, axis=-1, output_type=masked_lm_ids.dtype)
    correct = tf.cast(tf.equal(predictions, masked_lm_ids), tf.float32)
    return {
        "masked_lm_loss": tf.reduce_sum(weights * per_prediction) / denominator,
        "masked_lm_accuracy": tf.reduce_sum(weights * correct) / denominator,
    }


def init_student_from_teacher(student, teacher):
    """Copies the teacher's embeddings, pooler and MLM head into the student, as the original
    starts distillation (`init_embedding`: every non-block weight whose checkpoint name the
    teacher also has, with the same shape).

    Our paths inside the two models name the same weights as the original names do, except
    the embedding normalization, whose original name depends on `normalization_type`
    (`FakeLayerNorm` / `LayerNorm`): it is copied only when both use the same type.

    Args:
      student, teacher: `MobileBertForPreTraining` models (a BERT teacher is one too).

    Returns:
      The paths copied, sorted, as "encoder/<path inside the encoder>" and
      "mlm_head/<path inside the head>".
    """
    same_norm = student.config.normalization_type == teacher.config.normalization_type

    def local(model):
        # {"encoder/..." or "mlm_head/...": variable}, whatever the layers' names and however
        # the model was built (`build` or `build_parts`).
        paths = {}
        for layer, prefix in ((model.encoder, "encoder"), (model.mlm_head, "mlm_head")):
            marker = f"/{layer.name}/"
            for v in layer.variables:
                full = f"/{v.path}"
                if marker in full and not v.path.endswith("seed_generator_state"):
                    paths[f"{prefix}/{full.split(marker, 1)[1]}"] = v
        return paths

    teacher_variables = local(teacher)
    copied = []
    for path, variable in local(student).items():
        if path.startswith("encoder/layer_") or path not in teacher_variables:
            continue
        if path.startswith("encoder/embeddings/norm/") and not same_norm:
            continue
        source = teacher_variables[path]
        if tuple(source.shape) == tuple(variable.shape):
            variable.assign(source)
            copied.append(path)
    return sorted(copied)


def transfer_losses(teacher_outputs, student_outputs, step, config):
    """Stage 1's `progressive_transfer_losses` between two encoders' outputs (their calls with
    `return_attention_scores=True`) at global `step`, with `config`'s (a `DistillationConfig`)
    schedule and weights."""
    return progressive_transfer_losses(
        [teacher_outputs["embedding_output"]] + teacher_outputs["encoder_outputs"],
        [student_outputs["embedding_output"]] + student_outputs["encoder_outputs"],
        teacher_outputs["attention_scores"],
        student_outputs["attention_scores"],
        step,
        config.num_distill_steps,
        hidden_distill_factor=config.hidden_distill_factor,
        attention_distill_factor=config.attention_distill_factor,
        beta_distill_factor=config.beta_distill_factor,
        gamma_distill_factor=config.gamma_distill_factor,
        reference_quirks=config.reference_quirks,
    )


def distillation_losses(student_outputs, teacher_outputs, teacher_head, features, step, config):
    """The losses of one distillation step from both models' outputs.

    Args:
      student_outputs: `MobileBertForPreTraining` outputs of the student, called with
        `return_attention_scores=True` and `masked_lm_positions` in its inputs.
      teacher_outputs: the teacher's, with `return_attention_scores=True`.
      teacher_head: the teacher's masked-LM head.
      features: the batch: `masked_lm_positions`, `masked_lm_ids`, `masked_lm_weights` [B, P].
      step: the global step (a Python int: it picks the stage).
      config: a `DistillationConfig`.

    Returns:
      Stage 1 (`layer_wise_warmup` and step < num_distill_steps): the four transfer losses and
      "loss"; stage 2: "masked_lm_loss", "masked_lm_accuracy" and "loss".
    """
    if config.layer_wise_warmup and step < config.num_distill_steps:
        return transfer_losses(teacher_outputs, student_outputs, step, config)
    teacher_probs = None
    if config.distill_ground_truth_ratio != 1.0:
        hiddens = gather_positions(
            teacher_outputs["sequence_output"], features["masked_lm_positions"]
        )  # [B, P, H]
        teacher_probs = teacher_distribution(
            teacher_head, hiddens, config.distill_temperature, config.reference_quirks
        )
    losses = distillation_mlm_loss(
        student_outputs["mlm_logits"],
        teacher_probs,
        features["masked_lm_ids"],
        features["masked_lm_weights"],
        config.distill_ground_truth_ratio,
    )
    losses["loss"] = losses["masked_lm_loss"]
    return losses
