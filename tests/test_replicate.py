"""benchmarks/replicate.py --quick: the whole study end to end at CI size, then the report it
writes (a table per task with a row per arm, numbers that parse, every plot) and a resumed run
that skips every finished stage."""

import json
import os
import re

import pytest
from conftest import run_python, shared_path

ARMS = ("ELECTRA", "masked LM", "no pre-training")
TASKS = {"question_pair": "accuracy", "korsts": "Spearman"}
SCORE = re.compile(r"^(-?\d+\.\d+) ± (\d+\.\d+)$")


def _table(text, heading):
    """The rows (lists of cells) of the first Markdown table after `heading`."""
    rest = text.split(heading, 1)[1]
    rows = []
    for line in rest.splitlines()[1:]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]  # past the header and the alignment row


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    pytest.importorskip("matplotlib")
    shared_path("corpora", "ko_movie_reviews.txt")
    shared_path("finetune", "question_pair")
    out = str(tmp_path_factory.mktemp("replicate"))
    first = run_python("benchmarks/replicate.py", "--quick", "--output_dir", out, timeout=1500)
    assert first.returncode == 0, first.stderr[-3000:]
    return out, first


def test_quick_study_writes_every_table_and_plot(quick_study):
    out, _ = quick_study
    report = os.path.join(out, "report")
    text = open(os.path.join(report, "RESULTS.md"), encoding="utf-8").read()
    assert "PARTIAL" not in text
    for task, metric in TASKS.items():
        rows = _table(text, f"### {task} (dev {metric})")
        assert {r[0] for r in rows} == set(ARMS), rows
        for arm, steps, tflops, _wall, score, trials in rows:
            int(steps.replace(",", ""))
            float(tflops)
            mean, std = SCORE.match(score).groups()
            assert float(std) >= 0 and -100 <= float(mean) <= 100
            assert int(trials) == 2
            assert (int(steps.replace(",", "")) == 0) == (arm == "no pre-training")
    diagnostic = _table(text, "## Diagnostic")
    assert [r[0] for r in diagnostic] == ["ELECTRA", "ELECTRA, uniform replacements"]
    for row in diagnostic:
        int(row[1].replace(",", ""))
        assert 0 <= float(row[2]) <= 1 and 0 <= float(row[3]) <= 1
    pre = _table(text, "## Pre-training")
    assert {r[0] for r in pre} == {"ELECTRA", "masked LM"}
    for row in pre:
        for cell in row[4:6]:
            float(cell)
        assert (row[6] == "-") == (row[0] == "masked LM")
    for name in ("pretraining_curves.png", "pretraining_eval.png", "score_vs_compute.png"):
        path = os.path.join(report, "results", name)
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(path) > 10_000
        assert f"](results/{name})" in text


def test_equal_flops_and_results_from_the_runs(quick_study):
    out, _ = quick_study
    plan = json.load(open(os.path.join(out, "stages", "plan.json")))
    per_step, steps = plan["flops_per_step"], plan["steps"]
    assert per_step["mlm"] < per_step["electra"] and steps["mlm"] > steps["electra"]
    # Equal budgets up to the rounding of the masked LM's steps to whole compute points.
    assert abs(per_step["mlm"] * steps["mlm"] - plan["budget_flops"]) <= 2 * per_step["mlm"]
    for arm in ("electra", "mlm"):
        evals = json.load(open(os.path.join(out, "models", arm, "results", "eval_point_1.json")))
        assert evals["global_step"] == steps[arm]
        assert ("disc_auc" in evals) == (arm == "electra")
        assert os.path.exists(os.path.join(out, "models", arm, "results", "unsup_results.json"))


def test_rerun_skips_every_finished_stage(quick_study):
    out, first = quick_study
    stages = sorted(os.listdir(os.path.join(out, "stages")))
    # corpus, vocab, data, unigram baseline, task data, plan; 2 pre-training runs; 3 arms x 2
    # tasks fine-tuned; the uniform-generator diagnostic
    assert len(stages) == 15
    again = run_python("benchmarks/replicate.py", "--quick", "--output_dir", out, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[stage]" not in again.stderr
    assert again.stderr.count("[skip]") == len(stages)
