"""Plots of a run, written from its own files: `electra-plot --model_dir DIR`.

Reads what the runs already write -- the TensorBoard event files of a model directory (training
curves) and the fine-tuning results JSON files in its `results/` folder (scores per trial) -- and
draws PNGs into `<model_dir>/plots/` (or `--output_dir`). Nothing is typed in. Needs matplotlib
(`pip install -e ".[plot]"`).
"""

import io
import math

import tensorflow as tf
from tensorflow.core.util import event_pb2

from electra_tf import cli, fileio

# The pre-training objective's curves (losses and accuracies), in the order they are drawn.
OBJECTIVE_CURVES = (
    "train/loss",
    "train/masked_lm_loss",
    "train/masked_lm_accuracy",
    "train/disc_loss",
    "train/disc_accuracy",
    "train/sampled_masked_lm_accuracy",
)
# Every training curve, in the order they are drawn (those a run did not log are left out).
CURVES = OBJECTIVE_CURVES + (
    "train/loss_per_example",
    "train/learning_rate",
    "train/examples_per_second",
)


def read_scalars(log_dir):
    """{tag: [(step, value)]} from every TensorBoard event file directly in `log_dir`, sorted by
    step (a resumed run's repeated steps keep the last value)."""
    series = {}
    for path in sorted(tf.io.gfile.glob(fileio.join(log_dir, "events.out.tfevents.*"))):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.HasField("tensor"):
                    number = float(tf.make_ndarray(value.tensor))
                else:
                    number = float(value.simple_value)
                series.setdefault(value.tag, {})[event.step] = number
    return {tag: sorted(points.items()) for tag, points in series.items()}


def pyplot_module():
    try:
        import matplotlib  # noqa: PLC0415 -- optional extra

        matplotlib.use("Agg")
        from matplotlib import pyplot  # noqa: PLC0415
    except ImportError:
        raise ValueError(
            'Plots need matplotlib: pip install -e ".[plot]" (or pip install matplotlib).'
        ) from None
    return pyplot


def save_png(figure, path):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    fileio.write_bytes_atomic(path, buffer.getvalue())


def _training_tags(logged):
    """The training curves among the `logged` tags: CURVES' order, then the others by name."""
    return [t for t in CURVES if t in logged] + sorted(
        t for t in logged if t.startswith("train/") and t not in CURVES
    )


def _panels(pyplot, count):
    """A figure of `count` panels, three to a row, and its `count` axes (spare panels hidden)."""
    columns = min(3, count)
    rows = math.ceil(count / columns)
    figure, axes = pyplot.subplots(
        rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False
    )
    for axis in list(axes.flat)[count:]:
        axis.set_visible(False)
    return figure, list(axes.flat)[:count]


def plot_training_curves(log_dir, path, title=None):
    """One panel per logged training curve against the step; returns `path`, or None when the
    directory holds no training scalars."""
    series = read_scalars(log_dir)
    tags = _training_tags(series)
    if not tags:
        return None
    pyplot = pyplot_module()
    figure, axes = _panels(pyplot, len(tags))
    for axis, tag in zip(axes, tags):
        steps, values = zip(*series[tag])
        axis.plot(steps, values, linewidth=1.2)
        axis.set_title(tag.split("/", 1)[1], fontsize=10)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    figure.suptitle(title or log_dir, fontsize=11)
    save_png(figure, path)
    pyplot.close(figure)
    return path


def compare_training_curves(runs, path, tags=None, title=None):
    """Several runs' training curves overlaid, one panel per tag against the step; `runs` maps a
    label to a log directory. Tags: `tags` (those no run logged are left out), else every
    training curve any run logged. Returns `path`, or None when no run holds training scalars."""
    series = {label: read_scalars(log_dir) for label, log_dir in runs.items()}
    logged = set().union(*(s.keys() for s in series.values())) if series else set()
    tags = _training_tags(logged) if tags is None else [t for t in tags if t in logged]
    if not tags:
        return None
    pyplot = pyplot_module()
    figure, axes = _panels(pyplot, len(tags))
    for axis, tag in zip(axes, tags):
        for label, scalars in series.items():
            if tag in scalars:
                steps, values = zip(*scalars[tag])
                axis.plot(steps, values, linewidth=1.2, label=label)
        axis.set_title(tag.split("/", 1)[-1], fontsize=10)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title or "training curves", fontsize=11)
    figure.tight_layout()
    save_png(figure, path)
    pyplot.close(figure)
    return path


def plot_finetuning_scores(results_json, path):
    """Every trial's score per task and metric (dots) with the mean (bar), from a
    `<tasks>_results.json` written by run_finetuning.py; returns `path`."""
    results = fileio.read_json(results_json)
    if not isinstance(results, dict) or "trials" not in results:
        return None  # not a fine-tuning results file (pre-training's unsup_results.json)
    points = {}
    for trial in results["trials"]:
        for task, scores in trial.items():
            for metric, value in scores.items():
                if metric != "loss":
                    points.setdefault(f"{task}\n{metric}", []).append(value)
    if not points:
        return None
    pyplot = pyplot_module()
    labels = sorted(points)
    figure, axis = pyplot.subplots(figsize=(max(4.0, 1.3 * len(labels)), 3.5))
    for i, label in enumerate(labels):
        values = points[label]
        axis.bar(i, sum(values) / len(values), color="#c6dbef", width=0.6)
        axis.scatter([i] * len(values), values, color="#08519c", s=14, zorder=3)
    axis.set_xticks(range(len(labels)), labels, fontsize=8)
    axis.set_ylabel("score (dots: trials, bar: mean)")
    axis.grid(axis="y", alpha=0.3)
    axis.set_title(fileio.basename(results_json), fontsize=10)
    save_png(figure, path)
    pyplot.close(figure)
    return path


def plot_model_dir(model_dir, output_dir=None):
    """Training curves of the model directory and of each fine-tuned model below it, and the
    scores of every fine-tuning results file; returns the paths written."""
    output_dir = output_dir or fileio.join(model_dir, "plots")
    written = []
    curves = plot_training_curves(model_dir, fileio.join(output_dir, "training_curves.png"))
    written += [curves] if curves else []
    finetuned = fileio.join(model_dir, "finetuning_models")
    if tf.io.gfile.isdir(finetuned):
        for name in sorted(tf.io.gfile.listdir(finetuned)):
            name = name.rstrip("/")
            path = fileio.join(output_dir, f"{name}_training_curves.png")
            if tf.io.gfile.isdir(fileio.join(finetuned, name)):
                curve = plot_training_curves(fileio.join(finetuned, name), path, title=name)
                written += [curve] if curve else []
    for results in sorted(tf.io.gfile.glob(fileio.join(model_dir, "results", "*_results.json"))):
        name = fileio.basename(results)[: -len(".json")]
        scores = plot_finetuning_scores(results, fileio.join(output_dir, f"{name}.png"))
        written += [scores] if scores else []
    return written


def _main(fv):
    if not tf.io.gfile.isdir(fv.model_dir):
        raise FileNotFoundError(f"--model_dir {fv.model_dir} is not a folder")
    written = plot_model_dir(fv.model_dir, fv.output_dir)
    if fv.compare_with:
        runs = {fileio.basename(fv.model_dir.rstrip("/")): fv.model_dir}
        for other in fv.compare_with.split(","):
            if not tf.io.gfile.isdir(other):
                raise FileNotFoundError(f"--compare_with {other} is not a folder")
            runs[fileio.basename(other.rstrip("/"))] = other
        path = fileio.join(fv.output_dir or fileio.join(fv.model_dir, "plots"), "compared.png")
        written += [p for p in [compare_training_curves(runs, path)] if p]
    if not written:
        raise ValueError(f"{fv.model_dir} holds no training logs or fine-tuning results to plot")
    print("Wrote " + ", ".join(written))


COMMAND = cli.Command(
    usage="--model_dir=DATA/models/NAME [--output_dir=DIR] [--compare_with=DIR,...]",
    flags=(
        ("model_dir", str, None, "A model directory of run_pretraining.py or run_finetuning.py."),
        ("output_dir", str, None, "Where the PNGs go (default: <model_dir>/plots)."),
        (
            "compare_with",
            str,
            None,
            "Other model dirs (comma-separated) whose training curves compared.png overlays.",
        ),
    ),
    main=_main,
    required=("model_dir",),
)

run = COMMAND.entry_point

if __name__ == "__main__":
    run()
