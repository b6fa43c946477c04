"""The Chinese path on real CLUE files (issue 11): whole-word masked pre-training on real Chinese
text segmented with jieba, then TNEWS, IFLYTEK, CSL and OCNLI fine-tuned from FewCLUE's files and
written as CLUE submission files."""

import json
import os

import pytest
from conftest import (
    build_pretraining_data,
    shared_path,
    short_finetuning_config,
    short_pretraining_config,
)

from electra_tf.finetuning import runner as runner_lib
from electra_tf.finetuning import tasks as tasks_lib
from electra_tf.pretraining.trainer import Pretrainer

TASKS = {"tnews": "tnews", "iflytek": "iflytek", "csl": "csl", "ocnli": "ocnli_50k"}
TINY = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)


def _slice(source, target, n):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(source, encoding="utf-8") as f, open(target, "w", encoding="utf-8") as out:
        for _, line in zip(range(n), f):
            out.write(line)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_builtin_clue_tasks_read_fewclue_and_clue10_label_types(name, tmp_path):
    """FewCLUE writes integer labels (TNEWS 100, IFLYTEK 10) where CLUE 1.0 writes strings."""
    folder = shared_path("finetune", "clue_few", name)
    task = tasks_lib.get_task(name, raw_dir=folder)
    train = task.get_examples("train")
    assert len(train) > 100 and all(ex.label in task.label_list for ex in train)
    with open(f"{folder}/train.json", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    as_strings = tmp_path / name
    as_strings.mkdir()
    with open(as_strings / "train.json", "w", encoding="utf-8") as f:
        for row in rows:
            row["label"] = str(row["label"])
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    again = tasks_lib.get_task(name, raw_dir=str(as_strings)).get_examples("train")
    assert [ex.label for ex in again] == [ex.label for ex in train]


def test_chinese_whole_word_pretraining_then_clue_submissions(tmp_path):
    data_dir = str(tmp_path)
    vocab = shared_path("vocab", "zh_vocab.txt")
    _slice(shared_path("corpora", "zh_fortunes.txt"), f"{data_dir}/corpus/zh.txt", 1500)
    info = build_pretraining_data(
        data_dir, 64, num_out_files=2, word_segmenter="jieba", vocab_file=vocab
    )
    assert "is_word_start" in info["features"]
    config = short_pretraining_config(
        "zh",
        data_dir,
        vocab_file=vocab,
        model_hparam_overrides=TINY,
        vocab_size=21128,
        embedding_size=16,
        mask_strategy="whole_word",
        max_seq_length=64,
    )
    Pretrainer(config).train()
    for name in TASKS:
        source = shared_path("finetune", "clue_few", name)
        for split, n in (("train", 48), ("dev", 16), ("test", 12)):
            _slice(f"{source}/{split}.json", f"{data_dir}/finetuning_data/{name}/{split}.json", n)
    finetune = short_finetuning_config(
        "zh",
        data_dir,
        task_names=sorted(TASKS),
        vocab_file=vocab,
        max_seq_length=64,
        write_test_outputs=True,
    )
    results = runner_lib.run_finetuning(finetune)
    assert set(results[0]) == set(TASKS)
    out = f"{data_dir}/models/zh/test_predictions/trial_1"
    for name, clue_name in TASKS.items():
        task = tasks_lib.get_task(name, raw_dir=f"{data_dir}/finetuning_data/{name}")
        with open(f"{out}/{clue_name}_predict.json", encoding="utf-8") as f:
            lines = [json.loads(line) for line in f]
        tests = task.get_examples("test")
        assert [row["id"] for row in lines] == [ex.eid for ex in tests]
        assert all(row["label"] in task.label_list for row in lines)
