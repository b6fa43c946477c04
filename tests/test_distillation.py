"""run_distillation: a MobileBERT student distilled from a teacher through the command, resumed
bit-identically, stage 1 learning, teachers read from every source, LAMB's schedule, clear
errors; the distilled model dir fine-tuned by run_finetuning and exported as a SavedModel."""

import json
import os
import random

import numpy as np
import pytest
import tensorflow as tf
from conftest import short_finetuning_config, short_pretraining_config
from test_pretraining import _synthetic_data

import run_distillation
from electra_tf.conversion import mobilebert as mobilebert_lib
from electra_tf.conversion import saved_model
from electra_tf.conversion import teacher as teacher_lib
from electra_tf.finetuning import runner as runner_lib
from electra_tf.modeling.mobilebert import MobileBertConfig, load_mobilebert_size
from electra_tf.pretraining import distillation
from electra_tf.pretraining.distiller import DistillationHParams, Distiller
from electra_tf.pretraining.trainer import Pretrainer
from electra_tf.training import lamb
from electra_tf.training import model_dir as model_dir_lib

# A BERT teacher with mobilebert_tiny's blocks (2 of width 64, 4 heads), as layer-wise transfer
# needs.
STUDENT = load_mobilebert_size("mobilebert_tiny")
MATCHING = ("hidden_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings")
TEACHER = dict(
    {key: getattr(STUDENT, key) for key in MATCHING}, intermediate_size=64, hidden_act="gelu_new"
)
LOSS_FACTORS = distillation.ORIGINAL_TRANSFER_FACTORS


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Synthetic corpus and vocabulary, and a random BERT teacher as an original checkpoint."""
    data_dir = str(tmp_path_factory.mktemp("distill"))
    _synthetic_data(data_dir)
    vocab_size = len(open(f"{data_dir}/vocab.txt").read().split())
    config = MobileBertConfig(vocab_size=vocab_size, **TEACHER)
    mobilebert_lib.save_checkpoint(mobilebert_lib.new_model(config), f"{data_dir}/teacher")
    return data_dir


def _hparams(data_dir, **overrides):
    values = dict(
        teacher=f"{data_dir}/teacher",
        model_size="mobilebert_tiny",
        vocab_size=len(open(f"{data_dir}/vocab.txt").read().split()),
        max_seq_length=32,
        max_predictions_per_seq=5,
        train_batch_size=8,
        eval_batch_size=8,
        learning_rate=1e-3,
        num_warmup_steps=2,
        layer_wise_warmup=True,
        num_distill_steps=4,
        num_train_steps=4,
        distill_ground_truth_ratio=0.5,
        save_checkpoints_steps=2,
        iterations_per_loop=2,
        max_eval_steps=2,
        **LOSS_FACTORS,
    )
    values.update(overrides)
    return values


def _distiller(data_dir, name, **overrides):
    config = DistillationHParams(name, data_dir, **_hparams(data_dir, **overrides))
    return Distiller(config, teacher_lib.load_teacher)


def _student_weights(distiller):
    return {path: v.numpy() for path, v in model_dir_lib.named_variables(distiller.student).items()}


@pytest.fixture(scope="module")
def distilled(data_dir):
    """One run of the command: both stages, evaluation; returns the model dir."""
    hparams = _hparams(data_dir, do_eval=True, optimizer="lamb")
    argv = ["run_distillation.py", f"--data-dir={data_dir}", "--model-name=student"]
    assert run_distillation.COMMAND(argv + [f"--hparams={json.dumps(hparams)}"]) == 0
    return f"{data_dir}/models/student"


def test_command_runs_both_stages_and_writes_the_model_dir(distilled, data_dir):
    encoder_config = model_dir_lib.read(distilled, model_dir_lib.ENCODER_CONFIG)
    assert encoder_config["model_type"] == "mobilebert"
    assert encoder_config["intra_bottleneck_size"] == 16
    assert model_dir_lib.read(distilled, "distill_config.json")["teacher"] == f"{data_dir}/teacher"
    assert tf.train.latest_checkpoint(f"{distilled}/warmup").endswith("ckpt-4")
    assert tf.train.latest_checkpoint(distilled).endswith("ckpt-4")
    with open(f"{distilled}/results/unsup_results.json") as f:
        results = json.load(f)
    assert (
        0.0 <= results["masked_lm_accuracy"] <= 1.0 and 0 < results["num_predictions"] <= 2 * 8 * 5
    )
    assert "masked_lm_accuracy" in open(f"{distilled}/results/unsup_results.txt").read()
    for folder in (distilled, f"{distilled}/warmup"):  # TensorBoard, one run per stage
        assert any(name.startswith("events.out.tfevents") for name in os.listdir(folder))
    # The student's encoder is saved under the paths fine-tuning restores.
    keys = model_dir_lib.checkpoint_variables(tf.train.latest_checkpoint(distilled))
    assert "electra/layer_1/bottleneck_attention/kernel" in keys
    assert "mlm_head/extra_output_weights" in keys
    # It started from the teacher's MLM head (copied where shapes match): stage 1 leaves the
    # head alone (LAMB trains only the blocks), so the warm-up checkpoint still holds it.
    teacher = tf.train.load_checkpoint(f"{data_dir}/teacher")
    warmup = tf.train.load_checkpoint(tf.train.latest_checkpoint(f"{distilled}/warmup"))
    np.testing.assert_array_equal(
        warmup.get_tensor(model_dir_lib.checkpoint_key("mlm_head/dense/kernel")),
        teacher.get_tensor("cls/predictions/transform/dense/kernel"),
    )
    # ... and, with LAMB's layer-wise schedule, stage 1 never moved the embeddings.
    init = _distiller(data_dir, "init-only")
    np.testing.assert_array_equal(
        warmup.get_tensor(model_dir_lib.checkpoint_key("electra/embeddings/word_embeddings")),
        init.student.encoder.embeddings.word_embeddings.numpy(),
    )


def test_resume_is_bit_identical(distilled, data_dir):
    """Stopped inside stage 1, then inside stage 2, resumed: the same final student (weights and
    dropout states) as the fixture's uninterrupted run of the command."""
    _distiller(data_dir, "resumed", optimizer="lamb").train(stop_at={"warmup": 2})
    _distiller(data_dir, "resumed", optimizer="lamb").train(stop_at={"main": 2})
    resumed = _distiller(data_dir, "resumed", optimizer="lamb")
    resumed.train()
    got = _student_weights(resumed)
    prefix = tf.train.latest_checkpoint(distilled)
    reader = tf.train.load_checkpoint(prefix)
    assert sorted(got) == sorted(model_dir_lib.checkpoint_variables(prefix))
    for path, value in got.items():
        expected = reader.get_tensor(model_dir_lib.checkpoint_key(path))
        np.testing.assert_array_equal(value, expected, err_msg=path)
    assert int(resumed.train_loop("main").optimizer.iterations.numpy()) == 4


def test_stage_one_lowers_the_transfer_loss(data_dir):
    """Within the first block's phase, the gated transfer loss on a fixed batch falls."""
    distiller = _distiller(
        data_dir, "stage1", num_distill_steps=60, save_checkpoints_steps=15, strategy="cpu"
    )
    distiller.train_loop("warmup")
    dataset = distiller._dataset_fn(8, False, 0)(tf.distribute.InputContext())
    batch = next(iter(dataset))
    seed = tf.constant([3, 4], tf.int64)

    def loss():
        value, parts = distiller._transfer_loss(batch, seed, False)
        return float(value), {k: float(v) for k, v in parts.items()}

    before, parts_before = loss()
    distiller.train(stop_at={"warmup": 15})  # phase 0 is steps 0..29
    assert int(distiller.train_loop("warmup").optimizer.iterations.numpy()) == 15
    after, parts_after = loss()
    assert after < 0.6 * before, (parts_before, parts_after)
    assert parts_after["feature_map_transfer_loss"] < parts_before["feature_map_transfer_loss"]


def test_teacher_from_our_masked_lm_model_dir_has_its_outputs(data_dir):
    config = short_pretraining_config(
        "mlm-teacher",
        data_dir,
        steps=2,
        electra_objective=False,
        model_size="small",
        model_hparam_overrides={k: v for k, v in TEACHER.items() if k != "hidden_act"},
        embedding_size=64,
        vocab_size=len(open(f"{data_dir}/vocab.txt").read().split()),
        max_seq_length=32,
    )
    pretrainer = Pretrainer(config)
    pretrainer.train()
    teacher = teacher_lib.load_teacher(config.model_dir)
    assert teacher.has_mlm_head and teacher.model.config.embedding_size == 64
    inputs = {
        "input_ids": tf.constant([[2, 7, 9, 4, 11, 3, 0, 0]]),
        "input_mask": tf.constant([[1, 1, 1, 1, 1, 1, 0, 0]]),
        "segment_ids": tf.zeros([1, 8], tf.int32),
    }
    ours = pretrainer.model.discriminator(inputs)["sequence_output"]
    theirs = teacher.model.encoder(inputs)["sequence_output"]
    np.testing.assert_allclose(theirs.numpy(), ours.numpy(), atol=1e-5)
    np.testing.assert_allclose(
        teacher.model.mlm_head(theirs).numpy(),
        pretrainer.model.generator_head(ours).numpy(),
        atol=1e-4,
    )


def test_lamb_is_the_originals_update():
    """Trust ratio: each step moves a variable by lr x its norm; layer-wise warm-up trains only
    the current block (and the earlier ones at a tenth), never the embeddings."""
    variables = {
        name: tf.Variable(tf.random.stateless_normal([4, 3], [i, 0]), name=name)
        for i, name in enumerate(["electra/embeddings/w", "electra/layer_0/k", "electra/layer_1/k"])
    }
    grads = [tf.random.stateless_normal([4, 3], [9, i]) for i in range(3)]

    def step(optimizer):
        before = {n: v.numpy() for n, v in variables.items()}
        optimizer.apply(grads, list(variables.values()))
        return {
            n: np.linalg.norm(v.numpy() - before[n]) / np.linalg.norm(before[n])
            for n, v in variables.items()
        }

    plain = lamb.Lamb(learning_rate=0.01, clip_norm=None)
    plain.build(list(variables.values()))
    moved = step(plain)
    for name in variables:
        assert moved[name] == pytest.approx(0.01, rel=1e-4)
    phased = lamb.Lamb(learning_rate=0.01, clip_norm=None, steps_per_phase=1)
    phased.build(list(variables.values()))
    moved = step(phased)  # step 0: block 0's phase, background 1 (one-step phases)
    assert moved["electra/embeddings/w"] == 0.0 and moved["electra/layer_1/k"] == 0.0
    assert moved["electra/layer_0/k"] == pytest.approx(0.03, rel=1e-4)
    moved = step(phased)  # step 1: block 1's phase; block 0 goes on at a tenth
    assert moved["electra/embeddings/w"] == 0.0
    assert moved["electra/layer_1/k"] == pytest.approx(0.03, rel=1e-4)
    assert moved["electra/layer_0/k"] == pytest.approx(0.003, rel=1e-4)
    quirky = lamb.Lamb(learning_rate=0.01, clip_norm=None, steps_per_phase=1, reference_quirks=True)
    quirky.build(list(variables.values()))
    assert max(step(quirky).values()) == 0.0  # the original learns nothing at step 0


def _fails(capsys, data_dir, **overrides):
    argv = ["run_distillation.py", f"--data_dir={data_dir}", "--model_name=bad"]
    hparams = json.dumps(_hparams(data_dir, **overrides))
    assert run_distillation.COMMAND(argv + [f"--hparams={hparams}"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_teacher_errors_are_one_line(data_dir, tmp_path, capsys):
    assert "teacher /nowhere/bert does not exist" in _fails(
        capsys, data_dir, teacher="/nowhere/bert"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no model we can read" in _fails(capsys, data_dir, teacher=str(empty))
    assert "'teacher' is required" in _fails(capsys, data_dir, teacher=None)
    vocab_size = _hparams(data_dir)["vocab_size"]
    for name, vocab, hidden in (("other_vocab", 40, 64), ("wide", vocab_size, 128)):
        config = MobileBertConfig(vocab_size=vocab, **dict(TEACHER, hidden_size=hidden))
        mobilebert_lib.save_checkpoint(mobilebert_lib.new_model(config), str(tmp_path / name))
    err = _fails(capsys, data_dir, teacher=str(tmp_path / "other_vocab"))
    assert f"vocab_size 40 != the student's {vocab_size}" in err
    err = _fails(capsys, data_dir, teacher=str(tmp_path / "wide"))
    assert "hidden_size 128 != the student's 64" in err
    err = _fails(capsys, data_dir, **{k: 0.0 for k in LOSS_FACTORS})
    assert "layer_wise_warmup needs a non-zero" in err
    assert "Unknown hparam 'first_num_train_steps'" in _fails(
        capsys, data_dir, first_num_train_steps=10
    )


# ----- fine-tuning the distilled student ----------------------------------------------------------


def _classification_task(data_dir):
    """Sentences about cats (label 1) or dogs (label 0): learnable from their first word."""
    rng = random.Random(0)
    folder = f"{data_dir}/finetuning_data/pets"
    os.makedirs(folder, exist_ok=True)
    for split, n in (("train", 96), ("dev", 32)):
        rows = ["text,label\n"]
        for _ in range(n):
            label = rng.randrange(2)
            animal = "cat" if label else "dog"
            # First, so that [CLS] sees it through the trigram embedding from the start.
            words = [animal, rng.choice(["the", "a", "big", "red"]), rng.choice(["sat", "ran"])]
            words += rng.sample(["on", "to", "the", "mat", "house", "."], 3)
            rows.append(f"{' '.join(words)},{label}\n")
        with open(f"{folder}/{split}.csv", "w") as f:
            f.writelines(rows)
    return {
        "kind": "classification",
        "format": "csv",
        "header": True,
        "text_a": "text",
        "label": "label",
        "files": {"train": "train.csv", "dev": "dev.csv"},
    }


def test_finetuning_a_distilled_student(distilled, data_dir, tmp_path):
    config = short_finetuning_config(
        "student",
        data_dir,
        batch_size=16,
        task_names=["pets"],
        pets=_classification_task(data_dir),
        max_seq_length=32,
        learning_rate=3e-3,
        num_train_epochs=8.0,
        iterations_per_loop=12,
        save_checkpoints_steps=12,
    )
    runner = runner_lib.FinetuningRunner(config)
    task = runner.tasks[0]
    arrays = runner.split(task, "train", is_training=True).arrays
    model, optimizer = runner.build([task], 1, 48)
    train_loop = runner.train_loop([task], 1, model, optimizer, arrays, 48)
    # Every encoder weight comes from the distilled student's checkpoint, by name.
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(distilled))
    for v in model.encoder.trainable_variables:
        np.testing.assert_array_equal(
            v.numpy(), reader.get_tensor(model_dir_lib.checkpoint_key(v.path)), err_msg=v.path
        )
    first = train_loop.train(stop_at=12)["loss_per_example"]
    last = train_loop.train()["loss_per_example"]
    assert last < 0.5 * first
    predict = runner.predictor(model, task.kind)
    accuracy = runner.evaluate(task, predict)["accuracy"]
    assert accuracy >= 90.0  # percent
    # The fine-tuned MobileBERT exports to a SavedModel that reads raw strings.
    folder = config.model_dir.format(task="pets", trial=1)
    assert model_dir_lib.read(folder, model_dir_lib.ENCODER_CONFIG)["model_type"] == "mobilebert"
    finetuned = saved_model.load_finetuned_model(folder, f"{data_dir}/vocab.txt")
    finetuned.export_saved_model(str(tmp_path / "export"))
    serve = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"]
    out = serve(text_a=tf.constant(["cat the sat on the mat .", "dog a ran to the house ."]))
    assert out["labels"].numpy().tolist() == [b"1", b"0"]
