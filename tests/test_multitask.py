"""Joint multi-task fine-tuning (the reference trains every task of task_names in one model)."""

import json
import os
import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.conversion import cli as convert_cli
from electra_tf.finetuning import runner as runner_lib
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.finetuning.model import MultiTaskModel, build_multitask_model
from electra_tf.finetuning.tasks import Task
from electra_tf.modeling.config import EncoderConfig
from electra_tf.training import model_dir as model_dir_lib

WORDS = "the cat dog sat on mat a big red ran to house and".split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
SETTINGS = dict(max_seq_length=16, train_batch_size=8, eval_batch_size=8, predict_batch_size=8)
SETTINGS.update(iterations_per_loop=50, learning_rate=1e-3, num_train_epochs=30.0)
SETTINGS.update(vocab_size=len(SPECIALS + WORDS), model_hparam_overrides=TINY)
SETTINGS.update(init_checkpoint=None)


def _write_task(data_dir, name, spec, label_fn, rng):
    """A learnable CSV task: 48 training and 40 dev sentences of five distinct words."""
    rows = []
    for _ in range(88):
        words = rng.sample(WORDS, 5)
        rows.append(f"{' '.join(words)},{label_fn(words)}")
    folder = os.path.join(data_dir, "finetuning_data", name)
    os.makedirs(folder, exist_ok=True)
    for split, part in (("train", rows[:48]), ("dev", rows[48:])):
        with open(os.path.join(folder, f"{split}.csv"), "w") as f:
            f.write("text,label\n" + "".join(r + "\n" for r in part))
    spec = dict(spec, format="csv", header=True, text_a="text", label="label")
    spec["files"] = {"train": "train.csv", "dev": "dev.csv"}
    with open(os.path.join(folder, "task.json"), "w") as f:
        json.dump(spec, f)
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Two tasks of two kinds a tiny model learns: "has cat" (classification) and "has dog" as a
    0-or-5 score (regression)."""
    data_dir = str(tmp_path_factory.mktemp("multitask"))
    with open(os.path.join(data_dir, "vocab.txt"), "w") as f:
        f.write("\n".join(SPECIALS + WORDS) + "\n")
    rng = random.Random(3)
    classify = {"kind": "classification", "labels": ["yes", "no"]}
    _write_task(data_dir, "cats", classify, lambda w: "yes" if "cat" in w else "no", rng)
    score = {"kind": "regression", "range": [0.0, 5.0]}
    _write_task(data_dir, "dogs", score, lambda w: "5" if "dog" in w else "0", rng)
    return data_dir


def _config(data_dir, **hparams):
    return FinetuningConfig("m", data_dir, task_names=["cats", "dogs"], **{**SETTINGS, **hparams})


def test_joint_arrays_mark_each_row_with_its_task_and_zero_other_tasks_labels():
    sentence = Task("a", "classification", "tsv", {}, (), labels=["x", "y"])
    tagging = Task("b", "tagging", "tsv", {}, (), labels=["O", "B-X"])
    inputs = {k: np.full((2, 4), i + 1, np.int32) for i, k in enumerate(runner_lib._INPUT_KEYS)}
    a = dict(inputs, label_ids=np.array([1, 0], np.int32))
    b = {k: v[:1] * 7 for k, v in inputs.items()}
    b.update(label_ids=np.array([[1, 0, 1, 0]], np.int32))
    b.update(label_weights=np.array([[1.0, 1.0, 0.0, 0.0]], np.float32))
    joint = runner_lib.joint_arrays([sentence, tagging], [a, b])
    assert joint["task_id"].tolist() == [0, 0, 1]
    assert joint["input_ids"][:, 0].tolist() == [1, 1, 7]
    assert joint["a/label_ids"].tolist() == [1, 0, 0]
    assert joint["b/label_ids"].tolist() == [[0] * 4, [0] * 4, [1, 0, 1, 0]]
    assert joint["b/label_weights"][2].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert not joint["b/label_weights"][:2].any()


def test_each_rows_loss_is_its_own_tasks_and_the_config_round_trips():
    keras.utils.set_random_seed(0)
    encoder_config = EncoderConfig(vocab_size=30, **TINY)
    tasks = [
        Task("cats", "classification", "tsv", {}, (), labels=["yes", "no"]),
        Task("dogs", "regression", "tsv", {}, (), regression_range=(0.0, 5.0)),
    ]
    model = build_multitask_model(encoder_config, tasks)
    model.build_all(8)
    features = model.dummy_features(4, 8)
    features["input_ids"] = tf.constant(np.random.RandomState(0).randint(5, 30, (4, 8)), tf.int32)
    features["task_id"] = tf.constant([0, 1, 1, 0])
    features["cats/label_ids"] = tf.constant([1, 0, 0, 0])
    features["dogs/targets"] = tf.constant([0.0, 0.8, 0.2, 0.0])
    joint, _ = model.compute(features, training=False)
    inputs = {k: features[k] for k in runner_lib._INPUT_KEYS}
    cats, _ = model.for_task("cats").compute(
        dict(inputs, label_ids=features["cats/label_ids"]), False
    )
    dogs, out = model.for_task("dogs").compute(
        dict(inputs, targets=features["dogs/targets"]), False
    )
    expected = np.where([True, False, False, True], cats.numpy(), dogs.numpy())
    np.testing.assert_allclose(joint.numpy(), expected, rtol=1e-6)
    assert out["predictions"].shape == [4]
    names = sorted(v.path for v in model.trainable_variables)
    assert sum(n.startswith("electra/") for n in names) > 0
    assert {n.split("/")[0] for n in names} == {
        "electra",
        "task_specific_cats",
        "task_specific_dogs",
    }
    clone = MultiTaskModel.from_config(model.get_config())
    clone.build_all(8)
    assert len(clone.trainable_variables) == len(model.trainable_variables)
    assert clone.task_names == ["cats", "dogs"] and clone.kinds == ["classification", "regression"]


def test_joint_training_learns_both_tasks_in_one_model(data_dir, tmp_path):
    results = runner_lib.run_finetuning(_config(data_dir))
    scores = results[0]
    assert set(scores) == {"cats", "dogs"}
    assert scores["cats"]["accuracy"] >= 85.0, scores  # majority class: 60%
    assert scores["dogs"]["pearson"] >= 80.0, scores  # chance: 0 +- 16
    models = f"{data_dir}/models/m/finetuning_models"
    assert sorted(os.listdir(models)) == ["cats,dogs_model_1"]
    model_dir = f"{models}/cats,dogs_model_1"
    info = model_dir_lib.read(model_dir, model_dir_lib.TASK_INFO)
    assert info["kind"] == "multi_task" and list(info["tasks"]) == ["cats", "dogs"]
    keys = {k for k, _ in tf.train.list_variables(tf.train.latest_checkpoint(model_dir))}
    for head in ("task_specific_cats", "task_specific_dogs"):
        assert model_dir_lib.checkpoint_key(f"{head}/dense/kernel") in keys

    # One task of the joint model exports; without --task the error names the tasks.
    with pytest.raises(ValueError, match="jointly on cats, dogs: pass --task"):
        convert_cli.convert("ours", "saved_model", model_dir, str(tmp_path / "none"))
    convert_cli.convert("ours", "saved_model", model_dir, str(tmp_path / "dogs"), task="dogs")
    serve = tf.saved_model.load(str(tmp_path / "dogs")).signatures["serving_default"]
    scored = serve(text_a=tf.constant(["the dog sat on a mat", "the cat sat on a mat"]))
    low, high = sorted(scored["predictions"].numpy())
    assert high - low > 2.0  # a 0-or-5 score, from the dogs head

    # A changed training file of one task retrains the joint model, naming the file.
    runner = runner_lib.FinetuningRunner(_config(data_dir))
    with open(f"{data_dir}/finetuning_data/dogs/train.csv", "a") as f:
        f.write("the dog ran,5\n")
    runner._prepare_model_dir(model_dir, runner.tasks)
    assert os.path.isdir(f"{model_dir}.replaced") and not os.path.exists(model_dir)


def test_per_task_training_is_the_switch(data_dir):
    separate = f"{data_dir}/separate"
    config = _config(
        data_dir,
        joint_training=False,
        num_train_epochs=1.0,
        model_dir=f"{separate}/{{task}}_model_{{trial}}",
    )
    runner_lib.run_finetuning(config)
    dirs = sorted(p for p in os.listdir(separate) if not p.endswith(".lock"))
    assert dirs == ["cats_model_1", "dogs_model_1"]
    info = model_dir_lib.read(f"{separate}/dogs_model_1", model_dir_lib.TASK_INFO)
    assert info["kind"] == "regression" and "tasks" not in info


def _write_lines(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))


@pytest.fixture(scope="module")
def token_tasks_dir(tmp_path_factory):
    """Two tasks of the token-level kinds a tiny model learns: tag "cat" and "dog" as animals
    (tagging), and find the one "cat" of a context (span QA, MRQA format)."""
    data_dir = str(tmp_path_factory.mktemp("token_tasks"))
    _write_lines(os.path.join(data_dir, "vocab.txt"), SPECIALS + WORDS)
    rng = random.Random(5)
    others = [w for w in WORDS if w not in ("cat", "dog")]
    rows, records = [], [json.dumps({"header": {"dataset": "synthetic"}})]
    for i in range(88):
        words = rng.sample(WORDS, 6)
        tags = ["B-ANI" if w in ("cat", "dog") else "O" for w in words]
        rows.append(" ".join(words) + "\t" + " ".join(tags))
        context = rng.sample(others, 7)
        context.insert(rng.randrange(8), "cat")
        text = " ".join(context)
        start = text.index("cat")
        answer = {"text": "cat", "char_spans": [[start, start + 2]], "token_spans": [[0, 0]]}
        question = {"qid": f"q{i}", "question": "a", "answers": ["cat"]}
        question["detected_answers"] = [answer]
        records.append(json.dumps({"context": text, "qas": [question]}))
    tagging = os.path.join(data_dir, "finetuning_data", "animals")
    _write_lines(os.path.join(tagging, "train.tsv"), rows[:48])
    _write_lines(os.path.join(tagging, "dev.tsv"), rows[48:])
    spec = {"kind": "tagging", "format": "word_tags", "scheme": "BIO"}
    spec["files"] = {"train": "train.tsv", "dev": "dev.tsv"}
    _write_lines(os.path.join(tagging, "task.json"), [json.dumps(spec)])
    qa_dir = os.path.join(data_dir, "finetuning_data", "findcat")
    _write_lines(os.path.join(qa_dir, "train.jsonl"), records[:49])
    _write_lines(os.path.join(qa_dir, "dev.jsonl"), records[:1] + records[49:])
    spec = {
        "kind": "span_qa",
        "format": "mrqa",
        "files": {"train": "train.jsonl", "dev": "dev.jsonl"},
    }
    _write_lines(os.path.join(qa_dir, "task.json"), [json.dumps(spec)])
    return data_dir


def test_joint_training_learns_tagging_and_span_qa(token_tasks_dir):
    """Learning, not only finite metrics, for the token-level kinds, trained in one model."""
    config = FinetuningConfig(
        "m",
        token_tasks_dir,
        task_names=["animals", "findcat"],
        **{**SETTINGS, "beam_size": 4, "max_query_length": 4},
    )
    scores = runner_lib.run_finetuning(config)[0]
    assert scores["animals"]["f1"] >= 90.0, scores  # a third of the words are animals
    assert scores["findcat"]["exact_match"] >= 80.0, scores  # chance: 1 in 8
