"""RESULTS.md and its PNGs for benchmarks/replicate.py, from the study's own files only.

Every number comes from a file a run wrote: the stage records (`<output_dir>/stages/*.json`), the
pre-training evaluations at each compute point (`models/<arm>/results/eval_point_<k>.json`), the
fine-tuning results (`models/<arm>/results/<point>_<task>_results.json`) and the TensorBoard event
files of the pre-training runs. A study that has not finished gives a report marked PARTIAL that
names what is missing.
"""

import os

from electra_tf import fileio, plots

NOTES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "replicate_notes.md")


def _fmt_flops(flops):
    return f"{flops / 1e12:.2f}"


def _fmt_s(seconds):
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def collect(study):
    """{'stages': {name: record}, 'missing': [names], 'rows': {task: [row]}, 'points': ...}."""
    from replicate import ARMS, DIAGNOSTIC  # noqa: PLC0415

    s = study.setup
    stages, missing = {}, []

    def get(name):
        record = study.done(name)
        if record is None:
            missing.append(name)
        else:
            stages[name] = record
        return record

    for name in ("corpus", "vocab", "pretraining_data", "unigram", "finetuning_data", "plan"):
        get(name)
    plan = stages.get("plan")
    pre = {arm: get(f"pretrain_{arm}") for arm in ("electra", "mlm")}
    get(f"pretrain_{DIAGNOSTIC}")
    rows = {}
    for task in s.tasks:
        rows[task] = []
        for arm in ARMS:
            points = [(0, 0)] if arm == "random" else []
            if arm != "random" and plan:
                for k in range(s.compute_points, 0, -1):
                    points.append((k, plan["steps"][arm] * k // s.compute_points))
            for k, step in points:
                name = (
                    f"finetune_random_{task}"
                    if arm == "random"
                    else (f"finetune_{arm}_step{step}_{task}")
                )
                record = get(name)
                flops, wall = 0.0, 0.0
                if arm != "random":
                    flops = plan["flops_per_step"][arm] * step
                    if pre[arm]:
                        wall = sum(p["train_wall_s"] for p in pre[arm]["points"][:k])
                rows[task].append(
                    {
                        "arm": arm,
                        "point": k,
                        "steps": step,
                        "flops": flops,
                        "pretrain_wall_s": wall if arm != "random" else 0.0,
                        "record": record,
                    }
                )
    return {"stages": stages, "missing": missing, "rows": rows, "pre": pre, "plan": plan}


def score(record, task):
    from replicate import TASKS  # noqa: PLC0415

    summary = record["summary"][TASKS[task][0]]
    return summary["mean"], summary["std"]


def plot_score_vs_compute(study, data, path):
    from replicate import ARM_LABELS, COLORS, TASKS  # noqa: PLC0415

    pyplot = plots.pyplot_module()
    tasks = study.setup.tasks
    figure, axes = pyplot.subplots(1, len(tasks), figsize=(5.0 * len(tasks), 3.8), squeeze=False)
    for axis, task in zip(axes.flat, tasks):
        for arm in ("electra", "mlm", "random"):
            done = [r for r in data["rows"][task] if r["arm"] == arm and r["record"]]
            if not done:
                continue
            done.sort(key=lambda r: r["flops"])
            xs = [r["flops"] / 1e12 for r in done]
            means, stds = zip(*(score(r["record"], task) for r in done))
            if arm == "random":
                axis.axhline(means[0], color=COLORS[arm], linestyle="--", linewidth=1)
                axis.axhspan(means[0] - stds[0], means[0] + stds[0], color=COLORS[arm], alpha=0.12)
            axis.errorbar(
                xs, means, yerr=stds, marker="o", capsize=4, color=COLORS[arm],
                label=ARM_LABELS[arm],
            )  # fmt: skip
        axis.set_xlabel("pre-training compute (TFLOPs, matmuls)")
        axis.set_ylabel(f"dev {TASKS[task][1]} (mean ± std over trials)")
        axis.set_title(task, fontsize=10)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    figure.suptitle("Downstream score vs pre-training compute", fontsize=11)
    plots.save_png(figure, path)
    pyplot.close(figure)
    return path


def plot_pretraining_curves(study, path):
    """The two pre-training runs' logged training curves, overlaid (electra-plot's compare)."""
    from replicate import ARM_LABELS  # noqa: PLC0415

    runs = {
        ARM_LABELS[arm]: os.path.join(study.out, "models", arm)
        for arm in ("electra", "mlm")
        if os.path.isdir(os.path.join(study.out, "models", arm))
    }
    tags = list(plots.OBJECTIVE_CURVES)
    title = "Pre-training curves (TensorBoard logs; ELECTRA's masked-LM curves are its generator's)"
    return plots.compare_training_curves(runs, path, tags=tags, title=title)


def plot_pretraining_evals(data, path):
    """Evaluation metrics at each compute point against pre-training FLOPs."""
    from replicate import ARM_LABELS, COLORS  # noqa: PLC0415

    pyplot = plots.pyplot_module()
    panels = [
        ("masked_lm_accuracy", "eval masked-LM accuracy"),
        ("masked_lm_loss", "eval masked-LM loss"),
        ("disc_auc", "eval disc_auc (ELECTRA)"),
    ]
    figure, axes = pyplot.subplots(1, 3, figsize=(13.0, 3.6), squeeze=False)
    for axis, (metric, title) in zip(axes.flat, panels):
        for arm in ("electra", "mlm"):
            points = [p for p in ((data["pre"].get(arm) or {}).get("points", [])) if metric in p]
            if points:
                axis.plot(
                    [p["flops"] / 1e12 for p in points],
                    [p[metric] for p in points],
                    marker="o",
                    color=COLORS[arm],
                    label=ARM_LABELS[arm],
                )
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("pre-training compute (TFLOPs, matmuls)")
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    figure.suptitle("Pre-training evaluation at each compute point", fontsize=11)
    figure.tight_layout()
    plots.save_png(figure, path)
    pyplot.close(figure)
    return path


def _unigram_lines(unigram):
    if not unigram:
        return []
    return [
        "Context-free baseline (stage `unigram`, from the pre-training data): a model that "
        "ignores the context and predicts the token frequencies has a masked-LM loss of "
        f"{unigram['entropy_nats']:.3f} (the frequencies' entropy, in nats) and, always predicting "
        f"the most frequent token `{unigram['top_token']}`, an accuracy of "
        f"{unigram['top_token_share']:.4f}.",
        "",
    ]


def _pretraining_verdicts(data, unigram):
    """What the pre-training runs learned, against the context-free baseline and chance."""
    from replicate import ARM_LABELS  # noqa: PLC0415

    lines = []
    for arm in ("electra", "mlm"):
        points = (data["pre"].get(arm) or {}).get("points")
        if not points or not unigram:
            continue
        last = points[-1]
        gap = unigram["entropy_nats"] - last["masked_lm_loss"]
        what = "generator's " if arm == "electra" else ""
        lines.append(
            f"- {ARM_LABELS[arm]} pre-training: the {what}eval masked-LM loss "
            f"{last['masked_lm_loss']:.3f} is {gap:.3f} nats below the context-free baseline "
            f"{unigram['entropy_nats']:.3f} (accuracy {last['masked_lm_accuracy']:.4f} vs "
            f"{unigram['top_token_share']:.4f})"
            + (
                f"; the discriminator's disc_auc is {last['disc_auc']:.3f} (chance 0.5), "
                f"recall of replaced tokens {last['disc_recall']:.3f}."
                if "disc_auc" in last
                else "."
            )
        )
    return lines


def _diagnostic_lines(study, data):
    """The uniform-replacement run beside the ELECTRA arm at the same steps."""
    from replicate import DIAGNOSTIC  # noqa: PLC0415

    record = study.done(f"pretrain_{DIAGNOSTIC}")
    electra = data["pre"].get("electra")
    if not record or not electra:
        return ["## Diagnostic", "", f"Missing: stage `pretrain_{DIAGNOSTIC}`.", ""]
    lines = [
        "## Diagnostic: can the discriminator learn at all?",
        "",
        f"Stage `pretrain_{DIAGNOSTIC}`: the same ELECTRA run except that the replacements are "
        'drawn uniformly from the vocabulary (`"uniform_generator": true`, no generator), for '
        "half the ELECTRA arm's steps. Uniform replacements are mostly rare pieces, easy to spot "
        "without much context; the arm's generator replaces with plausible frequent tokens.",
        "",
        "| run | step | eval disc_auc | eval disc_recall | eval disc_accuracy |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, points in (
        ("ELECTRA", electra["points"]),
        ("ELECTRA, uniform replacements", record["points"]),
    ):
        for p in points:
            lines.append(
                f"| {label} | {p['global_step']:,} | {p['disc_auc']:.4f} | "
                f"{p['disc_recall']:.4f} | {p['disc_accuracy']:.4f} |"
            )
    lines.append("")
    return lines


def write_report(study):
    """Writes <report_dir>/RESULTS.md and <report_dir>/results/*.png; returns their paths."""
    from replicate import ARM_LABELS, TASKS  # noqa: PLC0415

    s = study.setup
    data = collect(study)
    stages, plan = data["stages"], data["plan"]
    partial = bool(data["missing"])
    results_dir = os.path.join(study.report_dir, "results")
    written = []
    curves = plot_pretraining_curves(study, os.path.join(results_dir, "pretraining_curves.png"))
    written += [curves] if curves else []
    written.append(plot_pretraining_evals(data, os.path.join(results_dir, "pretraining_eval.png")))
    written.append(
        plot_score_vs_compute(study, data, os.path.join(results_dir, "score_vs_compute.png"))
    )

    lines = ["# Results: ELECTRA vs masked LM at equal pre-training compute", ""]
    if partial:
        lines += [
            "**PARTIAL: the study has not finished. Missing stages: "
            + ", ".join(f"`{m}`" for m in data["missing"])
            + ".** Rows without numbers below are among them.",
            "",
        ]
    mode = "`--quick` (a smoke run: numbers mean nothing)" if study.quick else "full"
    lines += [
        "Generated by `python benchmarks/replicate.py"
        + (" --quick" if study.quick else "")
        + f"` ({mode} mode) from the runs' own result files; nothing here is typed in "
        "except the hand-written analysis at the end. Re-running the command resumes the study "
        "and rewrites this page.",
        "",
        "## Setup",
        "",
    ]
    corpus, vocab, pdata = stages.get("corpus"), stages.get("vocab"), stages.get("pretraining_data")
    if corpus:
        lines.append(
            f"- Corpus: the first {corpus['reviews']:,} reviews ({corpus['chars']:,} characters) "
            "of `../shared/corpora/ko_movie_reviews.txt` (Naver movie reviews, Korean), cut at a "
            "film (document) boundary."
        )
    if vocab:
        lines.append(
            f"- Vocabulary: {vocab['vocab_size']:,} WordPiece tokens learned from the first {s.vocab_lines:,} lines of that slice "
            f"(`electra_tf.vocab.learn_wordpiece_vocab`, cased, limit_alphabet "
            f"{s.limit_alphabet})."
        )
    if pdata:
        lines.append(
            f"- Pre-training data: `build_dataset` at {s.max_seq_length} tokens: "
            f"{pdata['counts']['examples']:,} examples, {pdata['counts']['corpus_tokens']:,} "
            f"corpus tokens ([UNK] rate {pdata['unk_rate']:.3%})."
        )
    gen_hidden = round(s.hidden_size * s.generator_hidden_size)
    lines += [
        f"- Encoder (every arm): hidden {s.hidden_size}, {s.num_hidden_layers} layers, "
        f"{s.num_attention_heads} heads, FFN {s.intermediate_size}, embeddings "
        f"{s.embedding_size}. ELECTRA's generator: hidden {gen_hidden} "
        f"(`generator_hidden_size` {s.generator_hidden_size}, not the paper's 1/4: a 1/4 "
        f"generator of this encoder would have hidden {round(s.hidden_size / 4)} and one "
        "head, too weak to produce plausible replacements; the paper found 1/4-1/2 best), "
        "same depth, shared token embeddings.",
        f"- Pre-training (both arms): batch {s.train_batch_size}, lr {s.learning_rate} with "
        f"{int(s.warmup_fraction * 100)}% warmup and linear decay, mask_prob 0.15, seed 0 (same "
        "data order and masking stream), disc_weight 50 for ELECTRA. Masked LM = "
        '`"electra_objective": false` (the same encoder with an MLM head).',
    ]
    if plan:
        lines.append(
            "- Equal compute: matmul FLOPs per training step (forward + backward = 3x forward; "
            "ELECTRA = generator + its MLM head at the masked positions + discriminator + its "
            f"head): ELECTRA {plan['flops_per_step']['electra'] / 1e9:.2f} GFLOPs, masked LM "
            f"{plan['flops_per_step']['mlm'] / 1e9:.2f} GFLOPs, so for a budget of "
            f"{_fmt_flops(plan['budget_flops'])} TFLOPs ELECTRA trains "
            f"{plan['steps']['electra']:,} steps and the masked LM {plan['steps']['mlm']:,}. "
            f"Each run is evaluated and fine-tuned at {s.compute_points} compute points "
            "(checkpoints at equal fractions of its steps)."
        )
    ft = stages.get("finetuning_data") or {}
    sizes = "; ".join(
        f"{task}: " + ", ".join(f"{name} {n:,}" for name, n in files.items())
        for task, files in ft.items()
        if task in s.tasks
    )  # fmt: skip
    lines += [
        f"- Fine-tuning: {s.num_trials} trials per arm, point and task (seeds 0..{s.num_trials - 1}"
        f", the same for every arm), lr {s.finetune_learning_rate}, layer-wise decay 0.8, "
        f"{s.finetune_epochs:g} epochs (pairs not doubled as (b, a)), batch {s.finetune_batch_size}, {s.finetune_seq_length} "
        f"tokens; examples used ({sizes}); scores on the dev split. No pre-training = the same "
        "encoder from random initialisation.",
        "",
    ]

    lines += ["## Pre-training", ""]
    lines += [
        "| arm | steps | TFLOPs | wall time | eval loss | eval masked-LM acc. | eval disc_auc |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for arm in ("electra", "mlm"):
        record = data["pre"].get(arm)
        if not record:
            lines.append(f"| {ARM_LABELS[arm]} | missing | | | | | |")
            continue
        for k, p in enumerate(record["points"], 1):
            wall = sum(q["train_wall_s"] for q in record["points"][:k])
            auc = f"{p['disc_auc']:.4f}" if "disc_auc" in p else "-"
            lines.append(
                f"| {ARM_LABELS[arm]} | {p['global_step']:,} | {_fmt_flops(p['flops'])} | "
                f"{_fmt_s(wall)} | {p['loss']:.4f} | {p['masked_lm_accuracy']:.4f} | {auc} |"
            )
    lines += [
        "",
        "ELECTRA's masked-LM accuracy is its (smaller) generator's. Evaluation: "
        f"{s.num_eval_steps} batches of {s.eval_batch_size} from the start of the pre-training "
        "data (the toolkit's `do_eval`, the reference's nine metrics).",
        "",
        *_unigram_lines(stages.get("unigram")),
        "![pre-training curves](results/pretraining_curves.png)",
        "",
        "![pre-training evaluation at each compute point](results/pretraining_eval.png)",
        "",
    ]

    lines += _diagnostic_lines(study, data)
    lines += ["## Downstream", ""]
    verdicts = []
    for task in s.tasks:
        metric_name = TASKS[task][1]
        lines += [
            f"### {task} (dev {metric_name})",
            "",
            f"| arm | pre-training steps | pre-training TFLOPs | pre-training wall time | "
            f"{metric_name} mean ± std | trials |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in data["rows"][task]:
            record = row["record"]
            cells = [
                ARM_LABELS[row["arm"]],
                f"{row['steps']:,}",
                _fmt_flops(row["flops"]),
                _fmt_s(row["pretrain_wall_s"]) if row["arm"] != "random" else "0 s",
            ]
            if record:
                mean, std = score(record, task)
                n = len(fileio.read_json(record["results_json"])["trials"])
                cells += [f"{mean:.2f} ± {std:.2f}", str(n)]
            else:
                cells += ["missing", "0"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        full = {
            r["arm"]: score(r["record"], task)
            for r in data["rows"][task]
            if r["record"] and r["point"] in (0, s.compute_points)
        }
        if "electra" in full and "mlm" in full:
            (me, se), (mm, sm) = full["electra"], full["mlm"]
            gap = me - mm
            noise = max(se, sm)
            if gap > noise:
                word = "ELECTRA beats the masked LM"
            elif gap < -noise:
                word = "the masked LM beats ELECTRA"
            else:
                word = "ELECTRA and the masked LM tie (the gap is within one std)"
            verdict = f"- {task}: {word} at the full budget: {me:.2f} vs {mm:.2f} ({gap:+.2f}"
            verdict += f", larger trial std {noise:.2f})"
            if "random" in full:
                mr = full["random"][0]
                verdict += (
                    f"; no pre-training {mr:.2f} (ELECTRA {me - mr:+.2f}, masked LM {mm - mr:+.2f})"
                )
            verdicts.append(verdict + ".")
    lines += ["![downstream score vs pre-training compute](results/score_vs_compute.png)", ""]
    lines += ["## What held and what did not", ""]
    lines += verdicts or ["- Not enough finished stages to compare the arms."]
    lines += _pretraining_verdicts(data, stages.get("unigram"))
    lines.append("")
    if not study.quick and os.path.exists(NOTES):
        lines += [fileio.read_text(NOTES).strip(), ""]

    total = sum(r["wall_s"] for r in stages.values())
    finished = sorted(r["finished"] for r in stages.values())
    lines += [
        "## Cost of this study",
        "",
        f"Sum of the finished stages' wall times: {_fmt_s(total)}"
        + (f" (stages finished between {finished[0]} and {finished[-1]})" if finished else "")
        + ", on the project's shared 2-core CPU under `nice -n 19` while other jobs ran.",
        "",
        "| stage | wall time |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {_fmt_s(r['wall_s'])} |" for name, r in stages.items()]
    lines.append("")
    path = os.path.join(study.report_dir, "RESULTS.md")
    fileio.write_text_atomic(path, "\n".join(lines))
    return [path] + written
