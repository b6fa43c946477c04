"""The README's first command, `electra-demo`, end to end with tiny settings."""

import json

from conftest import run_python


def _demo(output_dir, *flags):
    return run_python("-m", "electra_tf.demo", f"--output_dir={output_dir}", *flags)


def test_demo_runs_every_stage_and_continues(tmp_path):
    out = tmp_path / "demo"
    first = _demo(out, "--num_train_steps=3", "--demo_vocab_size=800")
    assert first.returncode == 0, first.stderr[-3000:]
    for stage in ("[1/4] Learning", "[2/4] Building", "[3/4] Pre-training"):
        assert stage in first.stderr
    assert "disc_auc" in first.stdout and "(chance: 0.5000)" in first.stdout
    vocab = (out / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert 700 <= len(vocab) <= 800 and vocab[0] == "[PAD]"
    info = json.loads((out / "pretrain_tfrecords" / "dataset_info.json").read_text())
    assert info["max_seq_length"] == 128 and info["counts"]["examples"] > 1000
    model_dir = out / "models" / "demo"
    results = json.loads((model_dir / "results" / "unsup_results.json").read_text())
    assert results["global_step"] == 3
    assert 0.0 <= results["masked_lm_accuracy"] <= 1.0
    assert (model_dir / "encoder_config.json").exists()
    assert f"Training curves: {model_dir}/plots/training_curves.png" in first.stdout
    assert (model_dir / "plots" / "training_curves.png").stat().st_size > 1000
    # Re-running continues: no stage is redone, training goes on from step 3.
    again = _demo(out, "--num_train_steps=5", "--demo_vocab_size=800")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[1/4]" not in again.stderr and "[2/4]" not in again.stderr
    assert "Restored" in again.stderr and "at step 3" in again.stderr
    results = json.loads((model_dir / "results" / "unsup_results.json").read_text())
    assert results["global_step"] == 5


def test_demo_help_lists_its_flags():
    shown = run_python("-m", "electra_tf.demo", "--help", timeout=120)
    assert shown.returncode == 0
    for flag in ("--output_dir", "--num_train_steps", "--demo_vocab_size"):
        assert flag in shown.stdout
