"""run_finetuning: a tiny model pre-trained by run_pretraining's Pretrainer fine-tuned, with no
conversion step, on real Korean data of every task kind; layer-wise learning rates; trials;
init checkpoints on other filesystems; JSON-spec tasks; the command line; clear errors."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    TINY_ELECTRA,
    build_pretraining_data,
    run_entry_point,
    run_python,
    shared_path,
    short_pretraining_config,
)

from electra_tf.conversion import cli
from electra_tf.finetuning import runner as runner_lib
from electra_tf.finetuning import tasks as tasks_lib
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.pretraining.trainer import Pretrainer
from electra_tf.training import model_dir as model_dir_lib

# The tiny encoder over the Korean cased vocabulary that the fine-tuning tests pre-train.
KOREAN_TINY = dict(
    model_hparam_overrides=TINY_ELECTRA, embedding_size=16, vocab_size=32200, do_lower_case=False
)
# Small, fast fine-tuning settings; the model's shape comes from its encoder_config.json.
FAST = {
    "do_lower_case": False,
    "max_seq_length": 64,
    "train_batch_size": 16,
    "eval_batch_size": 16,
    "predict_batch_size": 16,
    "num_train_epochs": 1.0,
    "learning_rate": 1e-3,
    "max_query_length": 16,
    "doc_stride": 32,
    "iterations_per_loop": 8,
}


def _head(path, n):
    with open(path, encoding="utf-8") as f:
        return [next(f) for _ in range(n)]


def _write(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)


def _write_task_subsets(data_dir):
    """Small train/dev/test subsets of the shared Korean data under data_dir/finetuning_data."""
    out = f"{data_dir}/finetuning_data"
    qp = shared_path("finetune", "question_pair")
    for split, n in (("train", 64), ("dev", 32), ("test", 16)):
        _write(f"{out}/question_pair/{split}.tsv", _head(f"{qp}/{split}.tsv", n + 1))
    sts = shared_path("finetune", "korsts")
    for split, n in (("train", 64), ("dev", 32), ("test", 16)):
        _write(f"{out}/korsts/sts-{split}.tsv", _head(f"{sts}/sts-{split}.tsv", n + 1))
    ner = _head(shared_path("finetune", "naver_ner", "test.tsv"), 96)
    _write(f"{out}/naver_ner/train.tsv", ner[:64])
    _write(f"{out}/naver_ner/test.tsv", ner[64:])
    with open(shared_path("finetune", "korquad", "KorQuAD_v1.0_dev.json"), encoding="utf-8") as f:
        paragraphs = sorted(
            (p for a in json.load(f)["data"] for p in a["paragraphs"]),
            key=lambda p: len(p["context"]),
        )
    for split, chosen in (("train", paragraphs[:10]), ("dev", paragraphs[10:14])):
        path = f"{out}/korquad/KorQuAD_v1.0_{split}.json"
        _write(
            path,
            [
                json.dumps(
                    {"version": "subset", "data": [{"title": "t", "paragraphs": chosen}]},
                    ensure_ascii=False,
                )
            ],
        )
    return paragraphs[:40]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Korean vocabulary, task subsets, and a tiny ELECTRA pre-trained on KorQuAD contexts."""
    data_dir = str(tmp_path_factory.mktemp("finetune"))
    tf.io.gfile.copy(shared_path("vocab", "ko_cased_vocab.txt"), f"{data_dir}/vocab.txt")
    paragraphs = _write_task_subsets(data_dir)
    _write(
        f"{data_dir}/corpus/ko.txt",
        [sentence.strip() + ".\n" for p in paragraphs for sentence in p["context"].split(". ")],
    )
    build_pretraining_data(data_dir, 64, do_lower_case=False)
    config = short_pretraining_config(
        "tiny", data_dir, model_size="small", **KOREAN_TINY, max_seq_length=64
    )
    Pretrainer(config).train()
    return data_dir


def _config(data_dir, **hparams):
    return FinetuningConfig("tiny", data_dir, **dict(FAST, **hparams))


def _checkpoint_value(directory, path):
    return tf.train.load_checkpoint(model_dir_lib.resolve_checkpoint(directory)).get_tensor(
        model_dir_lib.checkpoint_key(path)
    )


TASKS = ["question_pair", "korsts", "korquad", "naver_ner"]


@pytest.fixture(scope="module")
def all_kinds(data_dir):
    """One run fine-tuning the pre-trained model on a task of every kind, a model per task
    (joint training is tests/test_multitask.py's), test outputs included."""
    config = _config(data_dir, task_names=TASKS, write_test_outputs=True, joint_training=False)
    assert (config.vocab_size, config.embedding_size) == (32200, 16)  # from encoder_config.json
    return runner_lib.run_finetuning(config)


def test_every_task_kind_end_to_end_without_conversion(data_dir, all_kinds):
    assert len(all_kinds) == 1
    expected = {
        "question_pair": {"accuracy"},
        "korsts": {"pearson", "spearman", "mse"},
        "korquad": {"exact_match", "f1"},
        "naver_ner": {"precision", "recall", "f1"},
    }
    for task, keys in expected.items():
        assert keys | {"loss"} <= set(all_kinds[0][task]), task
        assert all(np.isfinite(v) for v in all_kinds[0][task].values())
    model_dir = f"{data_dir}/models/tiny"
    prefix = ",".join(TASKS)
    with open(f"{model_dir}/results/{prefix}_results.json") as f:
        saved = json.load(f)
    assert saved["trials"] == all_kinds
    assert set(saved["summary"]["korsts"]["spearman"]) == {"mean", "median", "std", "min", "max"}
    with open(f"{model_dir}/results/{prefix}_results.txt") as f:
        text = f.read()
    assert "question_pair (trial 1): accuracy:" in text and "korquad f1 over 1 trial(s)" in text
    with open(f"{data_dir}/finetuning_data/korquad/KorQuAD_v1.0_dev.json") as f:
        questions = {q["id"] for p in json.load(f)["data"][0]["paragraphs"] for q in p["qas"]}
    with open(f"{model_dir}/results/{prefix}_qa/korquad_preds.json") as f:
        assert set(json.load(f)) == questions
    for task in TASKS:
        finetuned = f"{model_dir}/finetuning_models/{task}_model_1"
        assert tf.train.latest_checkpoint(finetuned)
        assert os.path.exists(f"{finetuned}/encoder_config.json")
    # The encoder started from the pre-trained weights: a few small steps moved them a little
    # (independent random initialisations differ by ~0.03).
    kernel = "electra/layer_0/attention/query/kernel"
    pretrained = _checkpoint_value(model_dir, kernel)
    tuned = _checkpoint_value(f"{model_dir}/finetuning_models/korsts_model_1", kernel)
    assert 0 < np.abs(tuned - pretrained).max() < 0.01
    outputs = f"{model_dir}/test_predictions/trial_1"
    with open(f"{outputs}/question_pair_test.tsv") as f:
        rows = f.read().splitlines()
    assert rows[0] == "index\tprediction" and len(rows) == 17
    assert {r.split("\t")[1] for r in rows[1:]} <= {"0", "1"}
    with open(f"{outputs}/korsts_test.tsv") as f:
        assert all(0.0 <= float(r.split("\t")[1]) <= 5.0 for r in f.read().splitlines()[1:])
    with open(f"{outputs}/naver_ner_test.tsv") as f:
        assert len(f.read().splitlines()) == 33


def test_command_line_evaluates_the_finetuned_model(data_dir, all_kinds, tmp_path):
    """--do_train false reloads a whole fine-tuned model (no size or casing hparams: they come
    from its encoder_config.json and finetune_config.json) and reproduces its dev scores."""
    finetuned = f"{data_dir}/models/tiny/finetuning_models/question_pair_model_1"
    hparams = tmp_path / "hparams.json"
    hparams.write_text(
        json.dumps(
            {
                "task_names": ["question_pair"],
                "do_train": False,
                "init_checkpoint": finetuned,
                "max_seq_length": 64,
                "eval_batch_size": 16,
            }
        )
    )
    run_entry_point("run_finetuning.py", data_dir, "tiny", hparams)
    with open(f"{data_dir}/models/tiny/results/question_pair_results.json") as f:
        scores = json.load(f)["trials"][0]["question_pair"]
    assert scores["accuracy"] == all_kinds[0]["question_pair"]["accuracy"]
    assert scores["loss"] == pytest.approx(all_kinds[0]["question_pair"]["loss"], rel=1e-5)


def _test_rows(data_dir, task_name):
    task = tasks_lib.get_task(task_name, raw_dir=f"{data_dir}/finetuning_data/{task_name}")
    examples = task.get_examples("test")
    with open(f"{data_dir}/models/tiny/test_predictions/trial_1/{task_name}_test.tsv") as f:
        predictions = [row.split("\t")[1] for row in f.read().splitlines()[1:]]
    assert len(examples) == len(predictions) == 16
    return [ex.text_a for ex in examples], [ex.text_b or "" for ex in examples], predictions


def _convert_ours(to, model_dir, output):
    """`electra-convert --from ours` of a fine-tuned model directory succeeds."""
    flags = ["--from", "ours", "--to", to, "--input", model_dir, "--output", output]
    assert cli.COMMAND(["electra-convert", *flags]) == 0


def test_finetuned_models_export_to_saved_model_and_hf(data_dir, all_kinds, tmp_path):
    """electra-convert --from ours --to saved_model / hf on fine-tuned model dirs: the SavedModel
    reads the raw test texts and predicts what run_finetuning wrote for them; the HF
    ElectraForSequenceClassification gives the same logits."""
    models = f"{data_dir}/models/tiny/finetuning_models"
    exported = str(tmp_path / "question_pair_serving")
    result = run_python(
        *("-m electra_tf.conversion.cli --from ours --to saved_model --input".split()),
        f"{models}/question_pair_model_1",
        *("--output", exported),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "serving_default(text_a, text_b)" in result.stdout
    text_a, text_b, labels = _test_rows(data_dir, "question_pair")
    serve = tf.saved_model.load(exported).signatures["serving_default"]
    served = serve(text_a=tf.constant(text_a), text_b=tf.constant(text_b))
    assert [label.decode() for label in served["labels"].numpy()] == labels
    np.testing.assert_allclose(served["probabilities"].numpy().sum(-1), 1.0, atol=1e-6)

    _convert_ours("saved_model", f"{models}/korsts_model_1", str(tmp_path / "korsts"))
    text_a, text_b, scores = _test_rows(data_dir, "korsts")
    serve = tf.saved_model.load(str(tmp_path / "korsts")).signatures["serving_default"]
    predictions = serve(text_a=tf.constant(text_a), text_b=tf.constant(text_b))["predictions"]
    np.testing.assert_allclose(
        np.clip(predictions.numpy(), 0.0, 5.0), [float(s) for s in scores], rtol=0, atol=6e-4
    )

    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    hf_dir = str(tmp_path / "question_pair_hf")
    _convert_ours("hf", f"{models}/question_pair_model_1", hf_dir)
    hf_model = transformers.ElectraForSequenceClassification.from_pretrained(hf_dir).eval()
    text_a, text_b, labels = _test_rows(data_dir, "question_pair")
    encoded = transformers.AutoTokenizer.from_pretrained(hf_dir)(
        text_a,
        text_b,
        padding="max_length",
        truncation="longest_first",
        max_length=64,
        return_tensors="pt",
    )
    with torch.no_grad():
        logits = hf_model(**encoded).logits.numpy()
    np.testing.assert_allclose(logits, served["logits"].numpy(), rtol=0, atol=1e-4)
    assert [hf_model.config.id2label[i] for i in logits.argmax(-1)] == labels


def test_exports_refuse_what_they_cannot_serve(data_dir, all_kinds, tmp_path):
    models = f"{data_dir}/models/tiny/finetuning_models"
    with pytest.raises(ValueError, match="tagging model for task 'naver_ner'"):
        cli.convert("ours", "saved_model", f"{models}/naver_ner_model_1", str(tmp_path / "a"))
    with pytest.raises(ValueError, match="--to saved_model exports a fine-tuned"):
        cli.convert("ours", "saved_model", f"{data_dir}/models/tiny", str(tmp_path / "b"))
    with pytest.raises(FileNotFoundError, match="pass --vocab_file"):
        cli.convert(
            "ours",
            "saved_model",
            f"{models}/korsts_model_1",
            str(tmp_path / "d"),
            vocab_file=str(tmp_path / "missing.txt"),
        )


def test_trials_json_spec_task_and_init_checkpoint_on_another_filesystem(data_dir, ram_dir):
    prefix = tf.train.latest_checkpoint(f"{data_dir}/models/tiny")
    for path in tf.io.gfile.glob(prefix + "*") + [f"{data_dir}/models/tiny/encoder_config.json"]:
        tf.io.gfile.copy(path, f"{ram_dir}/{os.path.basename(path)}")
    rows = _head(shared_path("finetune", "question_pair", "train.tsv"), 97)[1:]
    for split, part in (("train", rows[:64]), ("dev", rows[64:])):
        _write(
            f"{data_dir}/finetuning_data/pairs/{split}.csv",
            ["first,second,same\n"]
            + [
                ",".join(
                    '"%s"' % field.replace('"', '""') for field in row.rstrip("\n").split("\t")
                )
                + "\n"
                for row in part
            ],
        )
    spec = {
        "kind": "classification",
        "format": "csv",
        "header": True,
        "text_a": "first",
        "text_b": "second",
        "label": "same",
        "files": {"train": "train.csv", "dev": "dev.csv"},
    }
    config = _config(
        data_dir,
        task_names=["pairs"],
        pairs=spec,
        num_trials=2,
        keep_all_models=False,
        init_checkpoint=f"{ram_dir}/{os.path.basename(prefix)}",
    )
    assert config.task_specs == {"pairs": spec} and config.embedding_size == 16
    results = runner_lib.run_finetuning(config)
    assert len(results) == 2
    losses = [trial["pairs"]["loss"] for trial in results]
    assert losses[0] != losses[1]  # different seeds
    with open(f"{data_dir}/models/tiny/results/pairs_results.json") as f:
        summary = json.load(f)["summary"]["pairs"]
    assert summary["loss"]["mean"] == pytest.approx(np.mean(losses))
    assert summary["loss"]["std"] == pytest.approx(np.std(losses, ddof=1))
    assert summary["accuracy"]["min"] <= summary["accuracy"]["median"] <= summary["accuracy"]["max"]
    models = f"{data_dir}/models/tiny/finetuning_models"
    assert not os.path.exists(f"{models}/pairs_model_1")  # keep_all_models false
    assert tf.train.latest_checkpoint(f"{models}/pairs_model_2")


@pytest.mark.parametrize("reference_bug", [False, True])
def test_layerwise_learning_rates(data_dir, reference_bug):
    """Paper: head 1, top layer d, ..., embeddings d^(L+1); the released code one power more."""
    config = _config(
        data_dir,
        task_names=["question_pair"],
        layerwise_lr_decay=0.8,
        layerwise_lr_decay_reference_bug=reference_bug,
    )
    runner = runner_lib.FinetuningRunner(config)
    model, optimizer = runner.build(runner.tasks[:1], 1, num_train_steps=10)
    multiplier = {v.path: optimizer.lr_multiplier(v) for v in model.trainable_variables}
    extra = int(reference_bug)
    assert multiplier["task_specific_question_pair/dense/kernel"] == 1.0
    assert multiplier["electra/layer_1/attention/query/kernel"] == pytest.approx(0.8 ** (1 + extra))
    assert multiplier["electra/layer_0/output/kernel"] == pytest.approx(0.8 ** (2 + extra))
    for embedding in ("electra/embeddings/word_embeddings", "electra/embeddings_project/kernel"):
        assert multiplier[embedding] == pytest.approx(0.8 ** (3 + extra))


def test_defaults_and_config_errors(data_dir, tmp_path):
    empty = str(tmp_path)
    assert FinetuningConfig("m", empty, task_names=["rte"]).num_train_epochs == 10.0
    large = FinetuningConfig("m", empty, task_names=["korquad"], model_size="large")
    assert (large.learning_rate, large.layerwise_lr_decay) == (5e-5, 0.9)
    assert (large.max_seq_length, large.num_train_epochs) == (512, 2.0)
    assert (
        FinetuningConfig("m", empty, model_size="large", learning_rate=1e-3).learning_rate == 1e-3
    )
    generic_qa = FinetuningConfig("m", empty, task_names=["mine"], mine={"kind": "span_qa"})
    assert generic_qa.max_seq_length == 512
    # The pre-trained model's own config supplies model_size and casing.
    inherited = FinetuningConfig("tiny", data_dir, task_names=["korsts"])
    assert (inherited.do_lower_case, inherited.embedding_size) == (False, 16)
    with pytest.raises(ValueError, match="did you mean 'layerwise_lr_decay'"):
        FinetuningConfig("m", empty, layerwise_decay=0.8)
    with pytest.raises(ValueError, match="vocab_size=100 contradicts"):
        FinetuningConfig("tiny", data_dir, vocab_size=100)


def test_restore_is_exact_and_errors_name_what_is_missing(data_dir, tmp_path):
    scratch = str(tmp_path / "{task}_{trial}")  # leaves the other tests' fine-tuned models alone
    config = _config(data_dir, task_names=["korsts"], model_dir=scratch)
    runner = runner_lib.FinetuningRunner(config)
    model, _ = runner.build(runner.tasks[:1], 1, num_train_steps=1)
    model_dir_lib.restore_variables(model.encoder.trainable_variables, config.init_checkpoint)
    for v in model.encoder.trainable_variables:
        np.testing.assert_array_equal(v.numpy(), _checkpoint_value(config.init_checkpoint, v.path))
    with pytest.raises(ValueError, match="task_specific_korsts/dense"):
        model_dir_lib.restore_variables(model.trainable_variables, config.init_checkpoint)
    deeper = _config(
        data_dir,
        task_names=["korsts"],
        model_dir=scratch,
        model_hparam_overrides={"num_hidden_layers": 3},
    )
    with pytest.raises(ValueError, match="electra/layer_2/"):
        runner_lib.run_finetuning(deeper)
    with pytest.raises(FileNotFoundError, match="init_checkpoint ram://nowhere/ckpt-4 not found"):
        runner_lib.run_finetuning(
            _config(
                data_dir,
                task_names=["korsts"],
                init_checkpoint="ram://nowhere/ckpt-4",
                model_dir=scratch,
                model_hparam_overrides=TINY_ELECTRA,
                embedding_size=16,
                vocab_size=32200,
            )
        )


def test_glue_and_clue_submission_files(tmp_path):
    """write_test_outputs names and formats files as the benchmarks' servers expect."""
    data_dir = str(tmp_path)
    tf.io.gfile.copy(shared_path("vocab", "ko_cased_vocab.txt"), f"{data_dir}/vocab.txt")
    pairs = [
        line.rstrip("\n").split("\t")
        for line in _head(shared_path("finetune", "question_pair", "dev.tsv"), 9)[1:]
    ]
    rte = f"{data_dir}/finetuning_data/rte"
    _write(
        f"{rte}/dev.tsv",
        ["index\tsentence1\tsentence2\tlabel\n"]
        + [
            f"{i}\t{a}\t{b}\t{'entailment' if y == '1' else 'not_entailment'}\n"
            for i, (a, b, y) in enumerate(pairs)
        ],
    )
    _write(
        f"{rte}/test.tsv",
        ["index\tsentence1\tsentence2\n"]
        + [f"{i}\t{a}\t{b}\n" for i, (a, b, _) in enumerate(pairs[:5])],
    )
    afqmc = f"{data_dir}/finetuning_data/afqmc"
    _write(
        f"{afqmc}/dev.json",
        [
            json.dumps({"sentence1": a, "sentence2": b, "label": y}, ensure_ascii=False) + "\n"
            for a, b, y in pairs
        ],
    )
    _write(
        f"{afqmc}/test.json",
        [
            json.dumps({"id": i, "sentence1": a, "sentence2": b}, ensure_ascii=False) + "\n"
            for i, (a, b, _) in enumerate(pairs[:3])
        ],
    )
    config = FinetuningConfig(
        "random",
        data_dir,
        task_names=["rte", "afqmc"],
        do_train=False,
        init_checkpoint=None,
        write_test_outputs=True,
        **KOREAN_TINY,
        max_seq_length=32,
        eval_batch_size=4,
        predict_batch_size=4,
    )
    results = runner_lib.run_finetuning(config)
    assert set(results[0]) == {"rte", "afqmc"}
    outputs = f"{data_dir}/models/random/test_predictions/trial_1"
    with open(f"{outputs}/RTE.tsv") as f:
        rows = [row.split("\t") for row in f.read().splitlines()]
    assert rows[0] == ["index", "prediction"] and [r[0] for r in rows[1:]] == list("01234")
    assert {r[1] for r in rows[1:]} <= {"entailment", "not_entailment"}
    with open(f"{outputs}/afqmc_predict.json") as f:
        lines = [json.loads(line) for line in f]
    assert [line["id"] for line in lines] == [0, 1, 2]
    assert {line["label"] for line in lines} <= {"0", "1"}


@pytest.mark.parametrize("task_name", ["question_pair", "naver_ner", "korquad", "korsts"])
def test_predictor_matches_the_distributed_one_in_row_order(data_dir, task_name):
    """The one-replica predictor (tensors fed to one traced function, sentence and tagging rows
    cut to their batch's width bucket, a ragged last batch filled and dropped) gives every row what
    the several-replica path (the former predictor: full-length rows through the distributed
    dataset, put back in row order by row id) gives, and the last rows what one forward pass of
    them alone gives."""
    config = _config(data_dir, task_names=[task_name])
    runner = runner_lib.FinetuningRunner(config)
    task = runner.tasks[0]
    model, _ = runner.build([task], 1, 1)
    arrays = runner.split(task, "train").arrays
    n = len(arrays["input_ids"])
    keys = runner_lib._INPUT_KEYS + runner_lib.label_keys(task.kind)
    batch_size = 7 if n % 6 == 0 else 6  # a ragged last batch

    def replica_fn(batch):
        losses, outputs = model.compute(batch, training=False)
        return dict(outputs, losses=losses)

    got = runner.predictor(model, task.kind)(arrays, batch_size)
    expected = runner._distributed_predictor(replica_fn, keys)(arrays, batch_size)
    last = replica_fn({k: tf.constant(arrays[k][-3:]) for k in keys})
    if task.kind == "tagging":  # padding's tags are read by nothing; the predictor says 0
        expected["predictions"] *= arrays["input_mask"]
        last["predictions"] *= arrays["input_mask"][-3:]
    assert sorted(got) == sorted(expected)
    for k, v in expected.items():
        assert got[k].shape == v.shape and got[k].dtype == v.dtype, k
        np.testing.assert_allclose(got[k][-3:], last[k], rtol=1e-4, atol=1e-4, err_msg=k)
        if not np.issubdtype(v.dtype, np.integer):
            np.testing.assert_allclose(got[k], v, rtol=1e-4, atol=1e-4, err_msg=k)
        elif k.endswith("_top_index"):  # the beam: equal but for near-ties of its log-probs
            assert np.mean(got[k] != v) < 1e-3, k
        else:
            np.testing.assert_array_equal(got[k], v, err_msg=k)
