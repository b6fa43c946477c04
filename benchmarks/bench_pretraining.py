"""Pre-training throughput and memory of one model size: this toolkit's modes against Hugging
Face PyTorch, one run.

  python benchmarks/bench_pretraining.py [--model_size small] [--modes fp32,fp32_xla] [--skip_torch]
      [--steps 8] [--rounds 1] [--baseline_root DIR] [--json out.json]

Workload (the issue's): `--model_size` (default ELECTRA-Small: 12 layers, hidden 256, embeddings
128, generator 1/4) with the vocabulary it is trained with (`tiny`: the Chinese 21,128; see
pretraining_workload.py), batch 32, length 128, one train step = masking, generator, sampling,
discriminator, AdamW update. Each contender runs in its own subprocess (clean peak memory, its own
threads):
- torch: transformers ElectraForMaskedLM + ElectraForPreTraining of the same shapes with tied
  embeddings, AdamW, the usual Hugging Face recipe (generator logits at every position);
- ours in plain fp32 graph mode, fp32 + XLA, mixed_bfloat16, mixed_bfloat16 + XLA;
- with `--baseline_root`, each of our modes also with another checkout's `electra_tf` (an A/B of a
  code change; contender names get "@baseline").
`--rounds N` runs every contender N times, alternating, so that an A/B sees the same load.
Reports tokens/s, model TFLOP/s (`electra_tf.modeling.flops`), the speed-up over torch, the losses
after the timed steps (same objective, so they must be alike), model-FLOPs utilisation against a
matmul peak measured in the same run, peak resident memory, and ours' resident memory after import,
after building the model and optimizer, after the first (tracing, compiling) call and at the end.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap

import bench_report

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pretraining_workload import (  # noqa: E402  pylint: disable=wrong-import-position
    BATCH,
    LENGTH,
    encoder_configs,
)

from electra_tf.modeling import flops  # noqa: E402  pylint: disable=wrong-import-position

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MASKED = int((0.15 + 0.005) * LENGTH)  # max_predictions_per_seq, as the reference: 19


def train_flops_per_token(model_size, gen_logits_positions):
    """Model FLOPs of one training token (forward + backward = 3 x forward matmul FLOPs), counted
    by `electra_tf.modeling.flops` (the counter the training logs use)."""
    disc, gen = encoder_configs(model_size)
    return flops.electra_train_flops_per_token(disc, gen, LENGTH, gen_logits_positions)


TORCH_CODE = """
import resource, time, torch, transformers
torch.manual_seed(0); torch.set_num_threads(os.cpu_count())
dev = "cuda" if torch.cuda.is_available() else "cpu"  # the same GPU as TensorFlow when there is one
torch.backends.cuda.matmul.allow_tf32 = True  # TensorFlow's fp32 default on GPUs that have TF32
B, T, P, steps, warmup = {B}, {T}, {P}, {steps}, {warmup}
disc_config, gen_config = {disc}, {gen}
V = disc_config["vocab_size"]
gen = transformers.ElectraForMaskedLM(transformers.ElectraConfig(**gen_config))
disc = transformers.ElectraForPreTraining(transformers.ElectraConfig(**disc_config))
gen.to(dev); disc.to(dev)
gen.electra.embeddings = disc.electra.embeddings   # shared embeddings, tied output layer
gen.generator_lm_head.weight = disc.electra.embeddings.word_embeddings.weight
params = list({{id(p): p for p in list(gen.parameters()) + list(disc.parameters())}}.values())
opt = torch.optim.AdamW(params, lr=5e-4, weight_decay=0.01)
ids = torch.randint(5, V, (B, T), device=dev); attn = torch.ones(B, T, dtype=torch.long, device=dev)
def step():
  pos = torch.rand(B, T, device=dev).argsort(-1)[:, :P]
  masked = ids.clone(); masked.scatter_(1, pos, 4)
  labels = torch.full((B, T), -100, device=dev); labels.scatter_(1, pos, ids.gather(1, pos))
  out = gen(input_ids=masked, attention_mask=attn, labels=labels)
  with torch.no_grad():
    logits = out.logits.gather(1, pos[..., None].expand(-1, -1, V))
    sampled = torch.distributions.Categorical(logits=logits).sample()
  fake = ids.clone(); fake.scatter_(1, pos, sampled)
  d = disc(input_ids=fake, attention_mask=attn, labels=(fake != ids).long())
  loss = out.loss + 50.0 * d.loss
  opt.zero_grad(); loss.backward()
  torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step()
  return out.loss.item(), d.loss.item()
for _ in range(warmup): step()
start = time.perf_counter()
for _ in range(steps): losses = step()
seconds = time.perf_counter() - start
print(json.dumps(dict(tokens_per_s=B * T * steps / seconds, mlm_loss=losses[0], disc_loss=losses[1],
                      peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      device=torch.cuda.get_device_name() if dev == "cuda" else "cpu")))
"""

OURS_CODE = """
import time
def rss_mb():  # (resident now, peak so far) in MB, from the kernel's accounting of this process
  fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
  return tuple(int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))
import tensorflow as tf
from pretraining_workload import make_pretrainer
stages = {{"imported": rss_mb()}}
B, T, steps, warmup = {B}, {T}, {steps}, {warmup}
pretrainer = make_pretrainer({hparams}, steps, num_train_steps=warmup + steps,
                             model_size={model_size!r})
stages["model and optimizer built"] = rss_mb()
loop = pretrainer.train_loop
stages["input pipeline built"] = rss_mb()
loop._loop_fn(tf.constant(warmup))
stages["first call (trace, compile, warm-up steps)"] = rss_mb()
start = time.perf_counter()
means, _ = loop._loop_fn(tf.constant(steps))
means = {{k: float(v) for k, v in means.items()}}  # waits for an accelerator to finish
seconds = time.perf_counter() - start
stages["timed steps"] = rss_mb()
gpus = tf.config.list_physical_devices("GPU")
print(json.dumps(dict(tokens_per_s=B * T * steps / seconds, mlm_loss=means["masked_lm_loss"],
                      disc_loss=means["disc_loss"], peak_rss_mb=stages["timed steps"][1],
                      rss_mb_by_stage=stages, device=gpus[0].name if gpus else "cpu")))
"""

PEAK_CODE = """
import time, tensorflow as tf
out = {{}}
for dtype in (tf.float32, tf.bfloat16):
  a = tf.random.normal([2048, 2048], dtype=tf.float32); a = tf.cast(a, dtype)
  f = tf.function(lambda x: tf.matmul(x, x))
  f(a).numpy()
  start = time.perf_counter(); n = 10
  for _ in range(n): f(a).numpy()
  out[dtype.name] = 2 * 2048 ** 3 * n / (time.perf_counter() - start)
print(json.dumps(out))
"""

MODES = {
    "fp32": {},
    "fp32_xla": {"jit_compile": True},
    "bf16": {"mixed_precision": "bfloat16"},
    "bf16_xla": {"mixed_precision": "bfloat16", "jit_compile": True},
}


def _run(code, root=ROOT):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, HERE]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    prelude = "import json, os, sys\n"
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        cwd=root,  # the working directory wins over an installed package
    )
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def _hf_config(config):
    """Hugging Face `ElectraConfig` arguments of one of our `EncoderConfig`s."""
    keys = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers")
    keys += ("num_attention_heads", "intermediate_size", "max_position_embeddings")
    return {k: getattr(config, k) for k in keys}


def _contenders(args):
    """{name: (code, checkout root)} in the order one round runs them."""
    fmt = dict(B=BATCH, T=LENGTH, P=MASKED, steps=args.steps, warmup=args.warmup)
    disc, gen = encoder_configs(args.model_size)
    contenders = {}
    if not args.skip_torch:
        code = TORCH_CODE.format(disc=_hf_config(disc), gen=_hf_config(gen), **fmt)
        contenders["torch"] = (code, ROOT)
    for mode in args.modes.split(","):
        if mode not in MODES:
            raise ValueError(f"--modes: unknown mode {mode!r}; expected one of {list(MODES)}")
        code = OURS_CODE.format(hparams=repr(MODES[mode]), model_size=args.model_size, **fmt)
        contenders[mode] = (code, ROOT)
        if args.baseline_root:
            contenders[mode + "@baseline"] = (code, os.path.abspath(args.baseline_root))
    return contenders


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_size", default="small")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--skip_torch", action="store_true", help="no PyTorch contender")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--baseline_root", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    contenders = _contenders(args)
    results = {"model_size": args.model_size, "peak_flops": _run(PEAK_CODE.format())}
    runs = {name: [] for name in contenders}
    for round_index in range(args.rounds):
        for name, (code, root) in contenders.items():
            runs[name].append(_run(code, root))
            print(f"round {round_index + 1}", name, runs[name][-1], flush=True)
    step_flops = train_flops_per_token(args.model_size, MASKED)
    base = None
    if "torch" in runs:
        base = statistics.median(r["tokens_per_s"] for r in runs["torch"])
    print(f"{args.model_size}: {step_flops / 1e6:.1f} model MFLOP per training token")
    print(
        f"{'contender':18s} {'tokens/s':>9s} {'TFLOP/s':>8s} {'vs torch':>9s} {'MFU':>6s} "
        f"{'mlm loss':>9s} {'disc loss':>9s} {'peak MB':>8s}"
    )
    for name, rs in runs.items():
        # The torch recipe computes generator logits at every position (see the docstring).
        token_flops = train_flops_per_token(args.model_size, LENGTH if name == "torch" else MASKED)
        peak = results["peak_flops"]["bfloat16" if name.startswith("bf16") else "float32"]
        r = dict(rs[-1], rounds=rs)
        r["tokens_per_s"] = statistics.median(x["tokens_per_s"] for x in rs)
        r["model_tflops_per_s"] = r["tokens_per_s"] * token_flops / 1e12
        r["mfu"] = r["tokens_per_s"] * token_flops / peak
        r["speedup_vs_torch"] = r["tokens_per_s"] / base if base else None
        r["peak_rss_mb"] = max(x["peak_rss_mb"] for x in rs)
        results[name] = r
        speedup = f"{r['speedup_vs_torch']:8.2f}x" if base else f"{'':9s}"
        print(
            f"{name:18s} {r['tokens_per_s']:9.0f} {r['model_tflops_per_s']:8.3f} {speedup} "
            f"{r['mfu']:6.1%} {r['mlm_loss']:9.3f} {r['disc_loss']:9.3f} {r['peak_rss_mb']:8.0f}"
        )
    for name, rs in runs.items():
        if "rss_mb_by_stage" in rs[-1]:
            stages = ", ".join(f"{k} {v[0]:.0f}" for k, v in rs[-1]["rss_mb_by_stage"].items())
            print(f"{name} resident MB after: {stages}")
    if args.rounds > 1:
        names = list(runs)
        for other in names[1:]:
            ratios = [
                b["tokens_per_s"] / a["tokens_per_s"] for a, b in zip(runs[names[0]], runs[other])
            ]
            print(
                f"{other} / {names[0]} tokens/s per round: " + ", ".join(f"{x:.3f}" for x in ratios)
            )
    print(
        "matmul peak GFLOP/s: "
        + ", ".join(f"{k} {v / 1e9:.0f}" for k, v in results["peak_flops"].items())
    )
    # The most any implementation of this step could do here: every model FLOP at the peak.
    ceiling = results["peak_flops"]["float32"] / step_flops
    results["fp32_ceiling_tokens_per_s"] = ceiling
    vs = f" = {ceiling / base:.2f}x torch" if base else ""
    print(f"fp32 ceiling (100% MFU): {ceiling:.0f} tokens/s{vs}")
    bench_report.write_json(args.json, results)


if __name__ == "__main__":
    main()
