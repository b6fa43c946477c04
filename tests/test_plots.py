"""`electra-plot`: PNGs drawn from a run's own TensorBoard logs and results files."""

import json

import pytest
import tensorflow as tf

from electra_tf import plots


def _log(folder, tag_values):
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        for step, values in tag_values:
            for tag, value in values.items():
                tf.summary.scalar(tag, value, step=step)
    writer.close()


def test_scalars_are_read_back_by_step_and_a_resume_overwrites(tmp_path):
    _log(tmp_path, [(1, {"train/loss": 3.0}), (2, {"train/loss": 2.5})])
    _log(tmp_path, [(2, {"train/loss": 2.25}), (3, {"train/loss": 2.0, "train/x": 1.0})])
    scalars = plots.read_scalars(str(tmp_path))
    assert scalars["train/loss"] == [(1, 3.0), (2, 2.25), (3, 2.0)]
    assert scalars["train/x"] == [(3, 1.0)]


def test_model_dir_plots_curves_and_finetuning_scores(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    model_dir = tmp_path / "models" / "m"
    _log(
        model_dir,
        [(s, {"train/loss": 5.0 / s, "train/disc_auc": 0.5 + s / 100}) for s in (1, 2, 3)],
    )
    _log(model_dir / "finetuning_models" / "rte_model_1", [(1, {"train/loss": 0.7})])
    results = {
        "trials": [{"rte": {"accuracy": 60.0, "loss": 0.6}}, {"rte": {"accuracy": 64.0}}],
        "summary": {},
    }
    (model_dir / "results").mkdir()
    (model_dir / "results" / "rte_results.json").write_text(json.dumps(results))
    (model_dir / "results" / "unsup_results.json").write_text(json.dumps({"loss": 1.0}))
    assert plots.COMMAND(["electra-plot", f"--model_dir={model_dir}"]) == 0
    written = sorted(p.name for p in (model_dir / "plots").iterdir())
    assert written == ["rte_model_1_training_curves.png", "rte_results.png", "training_curves.png"]
    for name in written:
        assert (model_dir / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "training_curves.png" in capsys.readouterr().out


def test_nothing_to_plot_is_a_clear_error(tmp_path, capsys):
    assert plots.COMMAND(["electra-plot", f"--model_dir={tmp_path}"]) == 1
    assert "holds no training logs or fine-tuning results" in capsys.readouterr().err
    assert plots.COMMAND(["electra-plot", f"--model_dir={tmp_path}/missing"]) == 1


def test_compare_overlays_the_runs_curves(tmp_path):
    pytest.importorskip("matplotlib")
    _log(tmp_path / "a", [(s, {"train/loss": 5.0 / s, "train/disc_loss": 0.7}) for s in (1, 2)])
    _log(tmp_path / "b", [(s, {"train/loss": 4.0 / s}) for s in (1, 2, 3)])
    out = tmp_path / "out"
    assert (
        plots.COMMAND(
            [
                "electra-plot",
                f"--model_dir={tmp_path / 'a'}",
                f"--compare_with={tmp_path / 'b'}",
                f"--output_dir={out}",
            ]
        )
        == 0
    )
    assert (out / "compared.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = {"a": str(tmp_path / "a"), "b": str(tmp_path / "b")}
    assert plots.compare_training_curves(runs, str(out / "x.png"), tags=["train/nope"]) is None
    assert (
        plots.COMMAND(
            ["electra-plot", f"--model_dir={tmp_path / 'a'}", f"--compare_with={tmp_path}/missing"]
        )
        == 1
    )
