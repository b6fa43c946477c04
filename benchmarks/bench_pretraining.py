"""ELECTRA-Small pre-training throughput: this toolkit's modes against Hugging Face PyTorch, one run.

  python benchmarks/bench_pretraining.py [--steps 8] [--json out.json]

Workload (the issue's): ELECTRA-Small (12 layers, hidden 256, embeddings 128, generator 1/4),
vocab 30522, batch 32, length 128, one train step = masking, generator, sampling, discriminator,
AdamW update. Each contender runs in its own subprocess (clean peak memory, its own threads):
- torch: transformers ElectraForMaskedLM + ElectraForPreTraining with tied embeddings, AdamW,
  the usual Hugging Face recipe (generator logits at every position);
- ours in plain fp32 graph mode, fp32 + XLA, mixed_bfloat16, mixed_bfloat16 + XLA.
Reports tokens/s, the speed-up over torch, the losses after the timed steps (same objective, so
they must be alike), model-FLOPs utilisation against a matmul peak measured in the same run, and
peak resident memory.
"""

import argparse
import json
import os
import subprocess
import sys
import textwrap

import bench_report

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from electra_tf.modeling import flops  # noqa: E402  pylint: disable=wrong-import-position
from electra_tf.modeling.config import EncoderConfig  # noqa: E402  pylint: disable=wrong-import-position

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BATCH, LENGTH, VOCAB = 32, 128, 30522
SMALL = dict(hidden=256, layers=12, heads=4, intermediate=1024, embedding=128)
GEN = dict(hidden=64, layers=12, heads=1, intermediate=256)
MASKED = int((0.15 + 0.005) * LENGTH)  # max_predictions_per_seq, as the reference: 19


def train_flops_per_token(gen_logits_positions):
    """Model FLOPs of one training token (forward + backward = 3 x forward matmul FLOPs), counted
    by `electra_tf.modeling.flops` (the counter the training logs use)."""
    common = dict(vocab_size=VOCAB, embedding_size=SMALL["embedding"])
    disc, gen = (
        EncoderConfig(
            hidden_size=c["hidden"],
            num_hidden_layers=c["layers"],
            num_attention_heads=c["heads"],
            intermediate_size=c["intermediate"],
            **common,
        )
        for c in (SMALL, GEN)
    )
    return flops.electra_train_flops_per_token(disc, gen, LENGTH, gen_logits_positions)


TORCH_CODE = """
import resource, time, torch, transformers
torch.manual_seed(0); torch.set_num_threads(os.cpu_count())
dev = "cuda" if torch.cuda.is_available() else "cpu"  # the same GPU as TensorFlow when there is one
torch.backends.cuda.matmul.allow_tf32 = True  # TensorFlow's fp32 default on GPUs that have TF32
B, T, V, P, steps, warmup = {B}, {T}, {V}, {P}, {steps}, {warmup}
common = dict(vocab_size=V, embedding_size=128, max_position_embeddings=512)
gen = transformers.ElectraForMaskedLM(transformers.ElectraConfig(hidden_size=64,
    num_hidden_layers=12, num_attention_heads=1, intermediate_size=256, **common))
disc = transformers.ElectraForPreTraining(transformers.ElectraConfig(hidden_size=256,
    num_hidden_layers=12, num_attention_heads=4, intermediate_size=1024, **common))
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
import resource, time
import tensorflow as tf
from pretraining_workload import make_pretrainer
B, T, steps, warmup = {B}, {T}, {steps}, {warmup}
loop = make_pretrainer({hparams}, steps, num_train_steps=warmup + steps).train_loop
loop._loop_fn(tf.constant(warmup))
start = time.perf_counter()
means, _ = loop._loop_fn(tf.constant(steps))
means = {{k: float(v) for k, v in means.items()}}  # waits for an accelerator to finish
seconds = time.perf_counter() - start
gpus = tf.config.list_physical_devices("GPU")
print(json.dumps(dict(tokens_per_s=B * T * steps / seconds, mlm_loss=means["masked_lm_loss"],
                      disc_loss=means["disc_loss"],
                      peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      device=gpus[0].name if gpus else "cpu")))
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


def _run(code):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, HERE]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    prelude = "import json, os, sys\n"
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    fmt = dict(B=BATCH, T=LENGTH, V=VOCAB, P=MASKED, steps=args.steps, warmup=args.warmup)
    results = {"peak_flops": _run(PEAK_CODE.format(**fmt))}
    results["torch"] = _run(TORCH_CODE.format(**fmt))
    print("torch", results["torch"], flush=True)
    for mode in args.modes.split(","):
        results[mode] = _run(OURS_CODE.format(hparams=repr(MODES[mode]), **fmt))
        print(mode, results[mode], flush=True)
    flops = {"torch": train_flops_per_token(LENGTH)}
    base = results["torch"]["tokens_per_s"]
    print(
        f"{'mode':10s} {'tokens/s':>9s} {'vs torch':>9s} {'MFU':>6s} {'mlm loss':>9s} "
        f"{'disc loss':>9s} {'peak MB':>8s}"
    )
    for name, r in results.items():
        if name == "peak_flops":
            continue
        peak = results["peak_flops"]["bfloat16" if name.startswith("bf16") else "float32"]
        r["speedup_vs_torch"] = r["tokens_per_s"] / base
        r["mfu"] = r["tokens_per_s"] * flops.get(name, train_flops_per_token(MASKED)) / peak
        print(
            f"{name:10s} {r['tokens_per_s']:9.0f} {r['speedup_vs_torch']:8.2f}x {r['mfu']:6.1%} "
            f"{r['mlm_loss']:9.3f} {r['disc_loss']:9.3f} {r['peak_rss_mb']:8.0f}"
        )
    print(
        "matmul peak GFLOP/s: "
        + ", ".join(f"{k} {v / 1e9:.0f}" for k, v in results["peak_flops"].items())
    )
    # The most any implementation of this step could do here: every model FLOP at the peak.
    ceiling = results["peak_flops"]["float32"] / train_flops_per_token(MASKED)
    results["fp32_ceiling_tokens_per_s"] = ceiling
    print(f"fp32 ceiling (100% MFU): {ceiling:.0f} tokens/s = {ceiling / base:.2f}x torch")
    bench_report.write_json(args.json, results)


if __name__ == "__main__":
    main()
