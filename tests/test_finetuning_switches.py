"""Every fine-tuning switch changes what its doc says (issue 11), shown where the config is read:
`FinetuningConfig` -> `FinetuningRunner` (features, heads, optimizer, train loop, decoding, files).
Tiny untrained models on the CSV tasks of test_multitask plus a span-QA and a sentence-pair task
written here; a train loop runs only for the loop's own switches. Learning itself is shown by
test_multitask.py::test_joint_training_learns_both_tasks_in_one_model and
test_faults.py::test_finetuning_learns_a_learnable_task."""

import json
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_finetuning_data import one_hot_outputs, squad_data
from test_multitask import SETTINGS, WORDS
from test_multitask import data_dir as multitask_data  # noqa: F401 (a fixture: cats, dogs)
from test_switches import compiled_with_xla

from electra_tf.finetuning import runner as runner_lib
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.finetuning.model import dummy_features, task_head
from electra_tf.finetuning.tasks import Task

CONTEXT = "the cat sat on a mat and the dog ran to the big red house and a cat sat on the mat"
ANSWER = "big red house"


def _write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f)


@pytest.fixture(scope="module")
def tasks_dir(multitask_data):  # noqa: F811 (pytest passes the imported fixture)
    """test_multitask's data folder plus "qa" (SQuAD 2.0 style: one answerable and one impossible
    question) and "pairs" (a symmetric sentence-pair task with a test split)."""
    data_dir = multitask_data
    qas = [("q1", "where did the dog run", ANSWER, CONTEXT.index(ANSWER))]
    qas.append(("q2", "who sat on the house", None, None))
    squad = {"version": "v2.0", "data": squad_data((CONTEXT, qas))}
    for split in ("train", "dev"):
        _write_json(f"{data_dir}/finetuning_data/qa/{split}.json", squad)
    rows = ["a,b,label"] + [f"the cat {w},a dog {w},{i % 2}" for i, w in enumerate(WORDS)]
    os.makedirs(f"{data_dir}/finetuning_data/pairs", exist_ok=True)
    for split in ("train", "dev", "test"):
        with open(f"{data_dir}/finetuning_data/pairs/{split}.csv", "w") as f:
            f.write("\n".join(rows) + "\n")
    return data_dir


QA_SPEC = {"kind": "span_qa", "format": "squad", "version_2": True}
QA_SPEC["files"] = {"train": "train.json", "dev": "dev.json"}
PAIRS_SPEC = {"kind": "classification", "format": "csv", "header": True, "symmetric": True}
PAIRS_SPEC.update(text_a="a", text_b="b", label="label", labels=["0", "1"])
PAIRS_SPEC["files"] = {"train": "train.csv", "dev": "dev.csv", "test": "test.csv"}


def _config(folder, task, **hparams):
    """test_multitask's tiny settings for one task of `tasks_dir` ("cats", "dogs", "qa",
    "pairs")."""
    specs = {"qa": QA_SPEC, "pairs": PAIRS_SPEC}
    if task in specs:
        hparams[task] = specs[task]
    return FinetuningConfig("m", folder, task_names=[task], **{**SETTINGS, **hparams})


def _runner(folder, task, **hparams):
    return runner_lib.FinetuningRunner(_config(folder, task, **hparams))


def test_qa_windows_follow_doc_stride_and_max_query_length(tasks_dir):
    def windows(**hparams):
        runner = _runner(tasks_dir, "qa", max_seq_length=16, **hparams)
        feats = runner.split(runner.tasks[0], "dev").qa_features
        assert feats.arrays["input_ids"].shape[1] == 16  # max_seq_length
        starts = [w.doc_start for w in feats.windows if w.example_index == 0]
        question = int((feats.arrays["segment_ids"][0] == 0).sum()) - 2  # minus [CLS], [SEP]
        return starts, question

    wide, question = windows(doc_stride=8, max_query_length=8)
    assert question == 5 and all(b - a == 8 for a, b in zip(wide, wide[1:]))
    narrow, short = windows(doc_stride=3, max_query_length=2)
    assert short == 2 and all(b - a == 3 for a, b in zip(narrow, narrow[1:]))
    assert len(narrow) > len(wide)


def test_qa_decoding_switches_choose_the_answers(tasks_dir, ram_dir):
    def decode(**hparams):
        hparams = dict(max_seq_length=48, max_query_length=16, **hparams)
        runner = _runner(tasks_dir, "qa", **hparams)
        data = runner.split(runner.tasks[0], "train", is_training=True)  # labeled positions
        return (
            runner,
            data,
            runner._decode_qa(runner.tasks[0], data, one_hot_outputs(data.qa_features)),
        )

    _, _, default = decode()
    assert default.predictions == {"q1": ANSWER, "q2": ""}  # q2's null odds 0 > -2.75
    assert decode(qa_na_threshold=1.0)[2].predictions["q2"] != ""
    assert decode(max_answer_length=2)[2].predictions["q1"] != ANSWER
    runner, data, _ = decode()
    positions = np.arange(48)
    flat = {  # logits falling off around the labeled start and end: many candidate spans
        k: -0.1 * np.abs(positions - v.argmax(-1)[:, None])
        for k, v in one_hot_outputs(data.qa_features).items()
    }
    few, many = (
        _runner(tasks_dir, "qa", max_seq_length=48, max_query_length=16, n_best_size=n)._decode_qa(
            runner.tasks[0], data, flat
        )
        for n in (1, 5)
    )
    assert len(few.nbest["q1"]) < len(many.nbest["q1"]) <= 5 + 1  # + the null answer
    files = {k: f"{ram_dir}/{k}/{{task}}.json" for k in ("qa_preds_file", "qa_na_file")}
    files["qa_eval_file"] = f"{ram_dir}/eval/{{task}}.json"
    runner, data, decoded = decode(**files)
    scores = runner._qa_scores(runner.tasks[0], data, one_hot_outputs(data.qa_features))
    read = {k: json.loads(tf.io.gfile.GFile(v.format(task="qa")).read()) for k, v in files.items()}
    assert read["qa_preds_file"] == decoded.best_non_null
    assert read["qa_na_file"] == pytest.approx(decoded.null_odds)
    assert read["qa_eval_file"] == pytest.approx(scores)


def _qa_head_outputs(seed=0, **hparams):
    config = _config("/unused", "qa", **hparams)
    task = Task("qa", "span_qa", "squad", {}, ())
    keras.utils.set_random_seed(seed)
    head = task_head(task, config)
    features = dummy_features("span_qa", 2, 12)
    features.update(input_mask=tf.ones([2, 12], tf.int32), is_impossible=tf.constant([0, 1]))
    features["segment_ids"] = tf.constant([[0] * 4 + [1] * 8] * 2)
    sequence = tf.random.stateless_normal([2, 12, 16], [1, 2])
    outputs = head(sequence, features, training=False)
    return {v.path.split("/")[1] for v in head.weights}, outputs


def test_span_qa_switches_build_the_head_they_name():
    layers, outputs = _qa_head_outputs()
    assert {"start_logits", "qa_hidden", "qa_logits", "answerable_hidden"} <= layers
    assert outputs["start_top_index"].shape == [2, 12]  # min(beam_size 20, 12 positions)
    assert _qa_head_outputs(beam_size=3)[1]["end_top_index"].shape == [2, 3, 3]
    layers, outputs = _qa_head_outputs(joint_prediction=False)
    assert "end_logits" in layers and "qa_hidden" not in layers
    assert "start_top_index" not in outputs
    layers, outputs = _qa_head_outputs(answerable_classifier=False)
    assert not any(name.startswith("answerable") for name in layers)
    assert "answerable_logit" not in outputs
    layers, _ = _qa_head_outputs(answerable_uses_start_logits=False)
    assert "answerable_logit" in layers and "answerable_hidden" not in layers
    # The answerable loss is added with answerable_weight (same weights: same seed).
    low, high = (_qa_head_outputs(answerable_weight=w)[1] for w in (0.5, 2.0))
    np.testing.assert_allclose(low["answerable_logit"], high["answerable_logit"])
    cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.constant([0.0, 1.0]), logits=high["answerable_logit"]
    )
    np.testing.assert_allclose(high["losses"] - low["losses"], 1.5 * cross_entropy, rtol=1e-5)


def test_double_unordered_adds_the_swapped_pairs_of_a_symmetric_task(tasks_dir):
    def rows(double):
        runner = _runner(tasks_dir, "pairs", double_unordered=double)
        return runner.split(runner.tasks[0], "train", is_training=True).examples

    single, double = rows(False), rows(True)
    assert len(double) == 2 * len(single) == 2 * len(WORDS)
    assert (double[-1].text_a, double[-1].text_b) == (single[-1].text_b, single[-1].text_a)


def test_log_examples_logs_the_first_featurized_training_example(tasks_dir, caplog):
    for log in (False, True):
        caplog.clear()
        runner = _runner(tasks_dir, "pairs", log_examples=log)
        with caplog.at_level(logging.INFO):
            runner.split(runner.tasks[0], "train", is_training=True)
        assert ("pairs example 0: [CLS] the cat the [SEP] a dog the [SEP]" in caplog.text) == log


def test_batch_sizes_cut_the_batches_and_never_change_the_outputs(tasks_dir, ram_dir):
    runner = _runner(
        tasks_dir, "pairs", eval_batch_size=3, predict_batch_size=5, test_predictions=ram_dir
    )
    task = runner.tasks[0]
    model, _ = runner.build([task], 1, num_train_steps=1)
    predict = runner.predictor(model, task.kind)
    asked = []

    def spy(arrays, batch_size):
        asked.append(batch_size)
        return predict(arrays, batch_size)

    runner.evaluate(task, spy)
    runner.write_test_outputs(task, 1, spy)
    assert asked == [3, 5]
    arrays = runner.split(task, "dev").arrays
    one, all_rows = predict(arrays, 1), predict(arrays, len(WORDS))
    np.testing.assert_allclose(one["losses"], all_rows["losses"], rtol=1e-5, atol=1e-6)


def test_trials_eval_and_test_outputs_go_where_the_keys_say(tasks_dir, ram_dir):
    """do_train false trains nothing; do_eval and num_trials give one result per trial, written to
    results_txt/results_json; write_test_outputs writes the first n_writes_test trials'
    predictions to test_predictions; task files come from raw_data_dir."""
    raw = f"{ram_dir}/raw/{{task}}"
    for name in ("train.csv", "dev.csv", "test.csv"):
        tf.io.gfile.makedirs(raw.format(task="pairs"))
        tf.io.gfile.copy(
            f"{tasks_dir}/finetuning_data/pairs/{name}", f"{raw.format(task='pairs')}/{name}"
        )
    runner = _runner(
        tasks_dir,
        "pairs",
        do_train=False,
        num_trials=2,
        write_test_outputs=True,
        n_writes_test=1,
        raw_data_dir=raw,
        test_predictions=f"{ram_dir}/out/trial_{{trial}}",
        results_txt=f"{ram_dir}/res.txt",
        results_json=f"{ram_dir}/res.json",
        model_dir=f"{ram_dir}/models/{{task}}_{{trial}}",
    )
    assert runner.tasks[0].path("train").startswith(f"{ram_dir}/raw/pairs/")
    results = runner.run()
    assert len(results) == 2 and set(results[0]["pairs"]) == {"accuracy", "loss"}
    assert json.loads(tf.io.gfile.GFile(f"{ram_dir}/res.json").read())["trials"] == results
    assert "pairs accuracy over 2 trial(s)" in tf.io.gfile.GFile(f"{ram_dir}/res.txt").read()
    assert [p.strip("/") for p in tf.io.gfile.listdir(f"{ram_dir}/out")] == ["trial_1"]
    assert not tf.io.gfile.exists(f"{ram_dir}/models")  # nothing trained
    quiet = _runner(tasks_dir, "pairs", do_train=False, do_eval=False, model_dir=f"{ram_dir}/q")
    assert quiet.run() == []


def test_seed_and_trial_set_the_initial_weights(tasks_dir):
    def head_kernel(seed, trial):
        runner = _runner(tasks_dir, "cats", seed=seed)
        model, _ = runner.build(runner.tasks, trial, num_train_steps=1)
        return next(v for v in model.weights if v.path.endswith("dense/kernel")).numpy()

    first = head_kernel(0, 1)
    np.testing.assert_array_equal(first, head_kernel(0, 1))
    assert not np.array_equal(first, head_kernel(1, 1))
    np.testing.assert_array_equal(head_kernel(1, 1), head_kernel(0, 2))  # trial t: seed + t - 1


def test_size_keys_shape_a_model_trained_from_scratch(tasks_dir):
    runner = _runner(tasks_dir, "cats", vocab_size=50, embedding_size=8)
    model, _ = runner.build(runner.tasks, 1, num_train_steps=1)
    shapes = {v.path: tuple(v.shape) for v in model.weights}
    assert shapes["electra/embeddings/word_embeddings"] == (50, 8)
    assert shapes["electra/embeddings_project/kernel"] == (8, 16)  # to hidden_size 16 (TINY)
    assert not any(p.startswith("electra/layer_1/") for p in shapes)  # num_hidden_layers 1


@pytest.mark.parametrize("epochs,batch,steps", [(2.5, 8, 15), (2.5, 16, 8), (1.0, 8, 6)])
def test_num_train_epochs_and_train_batch_size_set_the_steps(tasks_dir, epochs, batch, steps):
    runner = _runner(
        tasks_dir, "cats", num_train_epochs=epochs, train_batch_size=batch, do_eval=False
    )
    asked = []  # what the train loop would be given, instead of training
    runner.train = lambda tasks, trial, model, opt, arrays, n: asked.append(
        (n, len(arrays["input_ids"]))
    )
    assert runner.run_tasks(runner.tasks, 1) == {}
    assert asked == [(steps, 48)]  # ceil(epochs * 48 training rows / batch)


@pytest.mark.parametrize("warmup", [0.0, 0.5])
def test_warmup_proportion_learning_rate_and_weight_decay_set_the_update(tasks_dir, warmup):
    runner = _runner(
        tasks_dir, "cats", learning_rate=0.01, warmup_proportion=warmup, weight_decay_rate=0.1
    )
    model, optimizer = runner.build(runner.tasks, 1, num_train_steps=10)
    optimizer.iterations.assign(1)
    warm = min(1.0, 1 / (warmup * 10)) if warmup else 1.0
    lr = 0.01 * (1 - 1 / 10) * warm  # linear decay times the warm-up ramp (5 steps for 0.5)
    assert float(optimizer.learning_rate) == pytest.approx(lr, rel=1e-5)
    kernel = next(
        v for v in model.trainable_variables if v.path == "task_specific_cats/dense/kernel"
    )
    before = kernel.numpy()
    optimizer.apply([tf.zeros_like(kernel)], [kernel])  # the head's multiplier is 1
    np.testing.assert_allclose(kernel.numpy(), before * (1 - lr * 0.1), rtol=1e-5)


def _train_loop(tasks_dir, model_dir, **hparams):
    runner = _runner(tasks_dir, "cats", model_dir=model_dir, **hparams)
    model, optimizer = runner.build(runner.tasks, 1, num_train_steps=8)
    arrays = runner.train_arrays(runner.tasks)
    return runner.train_loop(runner.tasks, 1, model, optimizer, arrays, 8)


def test_loop_switches_drive_the_finetuning_train_loop(tasks_dir, tmp_path):
    loop_switches = dict(iterations_per_loop=2, save_checkpoints_steps=4, log_every_steps=3)
    train_loop = _train_loop(
        tasks_dir, str(tmp_path / "{task}_{trial}"), keep_checkpoint_max=1, **loop_switches
    )
    loop_fn, host_loops = train_loop._loop_fn, []
    train_loop._loop_fn = lambda n: host_loops.append(int(n)) or loop_fn(n)
    train_loop.train()
    # Host loops end at iterations_per_loop, each checkpoint step and each logging step.
    assert host_loops == [2, 1, 1, 2, 2]  # steps 2, 3 (log), 4 (save), 6 (log), 8
    ckpts = tf.train.get_checkpoint_state(str(tmp_path / "cats_1")).all_model_checkpoint_paths
    assert [int(c.rsplit("-", 1)[1]) for c in ckpts] == [8]  # keep_checkpoint_max 1 of 4, 8
    # jit_compile: the loop, traced (not run), calls an XLA-compiled step.
    assert not compiled_with_xla(loop_fn, tf.TensorSpec([], tf.int32))
    jitted = _train_loop(tasks_dir, str(tmp_path / "jit"), jit_compile=True)
    assert compiled_with_xla(jitted._loop_fn, tf.TensorSpec([], tf.int32))
