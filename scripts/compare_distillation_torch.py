#!/usr/bin/env python3
"""Sentence-encoder distillation speed and memory, PruneKit against PyTorch, side by side (issue 17).

Both sides fine-tune the same pruned student folder towards the same dense teacher on the same
sentences with the same recipe (SentenceDistillation's defaults; the script passes --batch and --lr 1e-4
to `prunekit finetune --model`, whose command-line defaults are the image models' batch 128, lr 3e-3):
  - the teacher's sentence embeddings computed once, before the timed loop;
  - batches of --batch sentences of similar length (sorted by token count, cut into batches, the
    batches visited in a shuffled order), each padded to its longest sentence;
  - loss 1 − cos(student embedding, teacher embedding), mean over the batch;
  - Adam, peak lr 1e-4 cosine-decayed to 0 over the run; only the blocks' Linear layers train
    (query, key, value, attention output, intermediate, output: weights and biases), as PruneKit's
    distillation does;
  - the student's pruned weights (its zeros) stay zero. PyTorch trains them densely and multiplies
    each pruned weight by its 0/1 mask after every step (cheaper than torch.nn.utils.prune's
    forward-time W_orig * mask, so the comparison favours PyTorch); PruneKit runs its pruned Linear
    layers on whatever its start-up crossover picks (CSR at 90 %).
Timed: the training loop only (PyTorch after one warm-up batch; PruneKit's `train_seconds`).
Memory: each side's peak resident set (PyTorch: this process, which also holds the sentences and
both models; PruneKit: its process, through GNU time).

Usage: python scripts/compare_distillation_torch.py --prunekit .build/release/prunekit \
           --student DIR --teacher models/all-MiniLM-L6-v2 --input data/sentences/train.txt [--limit 640]
           [--batch 32] [--threads 2] [--rounds 2]
(needs torch and sentence-transformers)
"""
import argparse, json, math, os, platform, random, resource, statistics, subprocess, sys, tempfile, time

import torch
from sentence_transformers import SentenceTransformer


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def linear_params(model):
    """The blocks' Linear layers of a sentence-transformers BERT (what PruneKit trains)."""
    bert = model[0].auto_model
    out = []
    for layer in bert.encoder.layer:
        for lin in (layer.attention.self.query, layer.attention.self.key, layer.attention.self.value,
                    layer.attention.output.dense, layer.intermediate.dense, layer.output.dense):
            out.append(lin)
    return out


def torch_round(student_dir, teacher_dir, sentences, batch, threads, seed):
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    teacher = SentenceTransformer(teacher_dir, device="cpu").eval()
    student = SentenceTransformer(student_dir, device="cpu").train()
    with torch.no_grad():
        target = teacher.encode(sentences, batch_size=64, convert_to_tensor=True, normalize_embeddings=False)
    lins = linear_params(student)
    masks = [(l.weight != 0).float() for l in lins]
    for p in student.parameters():
        p.requires_grad_(False)
    params = []
    for l in lins:
        for p in (l.weight, l.bias):
            p.requires_grad_(True)
            params.append(p)
    lengths = [len(student.tokenizer(s, truncation=True, max_length=student.max_seq_length)["input_ids"]) for s in sentences]
    by_len = sorted(range(len(sentences)), key=lambda i: (lengths[i], i))
    groups = [by_len[i:i + batch] for i in range(0, len(by_len), batch)]
    random.Random(seed).shuffle(groups)
    opt = torch.optim.Adam(params, lr=1e-4)
    total = len(groups)

    def step(k, idx):
        for g in opt.param_groups:
            g["lr"] = 1e-4 * 0.5 * (1 + math.cos(math.pi * k / total))
        feats = student.tokenize([sentences[i] for i in idx])
        emb = student(feats)["sentence_embedding"]
        loss = (1 - torch.nn.functional.cosine_similarity(emb, target[idx], dim=1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for l, m in zip(lins, masks):
                l.weight.mul_(m)
        return float(loss)

    # warm-up (not timed): one forward and backward, no optimizer step, so both sides take the same steps
    feats = student.tokenize([sentences[i] for i in groups[0]])
    (1 - torch.nn.functional.cosine_similarity(student(feats)["sentence_embedding"], target[groups[0]], dim=1)).mean().backward()
    opt.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    losses = [step(k, idx) for k, idx in enumerate(groups)]
    secs = time.perf_counter() - t0
    return len(sentences) / secs, statistics.mean(losses)


def prunekit_round(binary, student_dir, teacher_dir, input_file, batch, threads, seed):
    with tempfile.TemporaryDirectory() as d:
        # GNU time for the peak: the child's own rusage would count the pages it shared with this
        # (large) Python process between fork and exec
        r = subprocess.run(["/usr/bin/time", "-f", "maxrss_kb %M", binary, "finetune", "--model", student_dir, "--teacher", teacher_dir, "--input", input_file,
                            "--epochs", "1", "--batch", str(batch), "--lr", "1e-4", "--seed", str(seed), "--threads", str(threads),
                            "--out", os.path.join(d, "out"), "--json"], capture_output=True, text=True, check=True)
    o = json.loads(r.stdout)
    rss = [int(l.split()[1]) for l in r.stderr.splitlines() if l.startswith("maxrss_kb ")][-1] / 1024
    return o["sentences_per_second"], o["epoch_losses"][0], rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prunekit", required=True)
    ap.add_argument("--student", required=True, help="pruned encoder folder (plain layout: HuggingFace names, zeros where pruned)")
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--limit", type=int, default=640)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sentences = [l.rstrip("\n") for l in open(args.input, encoding="utf-8") if l.strip()][:args.limit]
    res = {"pytorch": [], "prunekit": []}
    with tempfile.TemporaryDirectory() as d:
        subset = os.path.join(d, "sentences.txt")
        with open(subset, "w", encoding="utf-8") as f:
            f.write("\n".join(sentences) + "\n")
        for r in range(args.rounds):
            sps, loss = torch_round(args.student, args.teacher, sentences, args.batch, args.threads, args.seed)
            res["pytorch"].append({"sentences_per_second": sps, "mean_loss": loss})
            torch_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            sps, loss, pk_rss = prunekit_round(args.prunekit, args.student, args.teacher, subset, args.batch, args.threads,
                                               args.seed)
            res["prunekit"].append({"sentences_per_second": sps, "epoch_loss": loss})
            print(f"round {r + 1}: pytorch {res['pytorch'][-1]['sentences_per_second']:.1f}, "
                  f"prunekit {res['prunekit'][-1]['sentences_per_second']:.1f} sentences/s", file=sys.stderr)
    med = {k: statistics.median(x["sentences_per_second"] for x in v) for k, v in res.items()}
    print(json.dumps({"cpu": cpu_name(), "threads": args.threads, "batch": args.batch, "sentences": len(sentences),
                      "torch": torch.__version__, "rounds": res, "median_sentences_per_second": med,
                      "ratio_to_pytorch": med["prunekit"] / med["pytorch"],
                      "peak_rss_mb": {"pytorch": round(torch_rss), "prunekit": round(pk_rss)}}, indent=1))


if __name__ == "__main__":
    main()
