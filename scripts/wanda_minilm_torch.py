#!/usr/bin/env python3
"""Independent PyTorch reference for one-shot pruning of all-MiniLM-L6-v2 (issue 8).

Wanda (Sun et al. 2023) as its reference implementation applies it: block by block, the input
norms of every Linear in block i come from calibration sentences that ran through the already
pruned blocks before it; each output row keeps the half of its weights with the largest
|w|·‖x‖ (or 2 of every 4). Magnitude pruning keeps the largest |w| per row. The held-out mean
cosine to the dense model is printed for each, beside PruneKit's when its pruned folders are given.

    /opt/torchenv/bin/python scripts/wanda_minilm_torch.py --model models/all-MiniLM-L6-v2 \\
        --calibration data/sentences/calibration.txt --heldout data/sentences/heldout.txt \\
        [--prunekit-unstructured DIR] [--prunekit-24 DIR]

Needs torch and sentence-transformers (not needed by PruneKit itself).
"""
import argparse
import json

import torch
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer


def lines(path):
    with open(path, encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f]


def linears(block):
    return [block.attention.self.query, block.attention.self.key, block.attention.self.value,
            block.attention.output.dense, block.intermediate.dense, block.output.dense]


def row_mask(score, structure):
    """Boolean keep-mask: per row, the top half of score (unstructured) or 2 of every 4."""
    if structure == "2:4":
        g = score.reshape(score.shape[0], -1, 4)
        idx = g.topk(2, dim=-1).indices
        keep = torch.zeros_like(g, dtype=torch.bool).scatter_(-1, idx, True)
        return keep.reshape(score.shape)
    k = score.shape[1] // 2
    idx = score.topk(k, dim=1).indices
    return torch.zeros_like(score, dtype=torch.bool).scatter_(1, idx, True)


def prune(model, tok, calibration, method, structure):
    bert = model[0].auto_model
    for i, block in enumerate(bert.encoder.layer):
        norms = {}
        hooks = []
        if method == "wanda":
            for lin in linears(block):
                def hook(mod, inp, out, lin=lin):
                    x = inp[0].detach().reshape(-1, inp[0].shape[-1]).double()
                    norms[lin] = norms.get(lin, 0) + (x * x).sum(0)
                hooks.append(lin.register_forward_hook(hook))
            with torch.no_grad():
                for s in calibration:  # one sentence at a time: no padding rows
                    bert(**tok([s], return_tensors="pt", truncation=True, max_length=256))
            for h in hooks:
                h.remove()
        for lin in linears(block):
            w = lin.weight.data
            score = w.abs().double() * (norms[lin].sqrt()[None, :] if method == "wanda" else 1)
            w.mul_(row_mask(score, structure))
    return model


def embed(model, sentences):
    return model.encode(sentences, batch_size=32, convert_to_tensor=True, normalize_embeddings=True)


def mean_cosine(a, b):
    return float((a * b).sum(1).mean())


def prunekit_model(path, base):
    m = SentenceTransformer(base, device="cpu")
    state = load_file(path + "/model.safetensors")
    own = m[0].auto_model.state_dict()
    # PruneKit keeps only token type 0 (all it uses); every other tensor must be there and match
    missing = [k for k in own if k not in {n.removeprefix("bert.") for n in state} and "position_ids" not in k
               and "pooler" not in k]
    if missing:
        raise SystemExit(f"{path}: missing {missing[:3]}")
    for k, v in state.items():
        k = k.removeprefix("bert.")
        if k in own and own[k].shape == v.shape:
            own[k].copy_(v)
        elif k in own and k.endswith("token_type_embeddings.weight"):
            own[k][: v.shape[0]].copy_(v)
        elif k in own:
            raise SystemExit(f"{path}: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
    return m


def agreement(torch_model, folder):
    """Fraction of weight positions where PruneKit's zeros and this script's zeros agree."""
    state = load_file(folder + "/model.safetensors")
    same = total = 0
    for name, p in torch_model[0].auto_model.named_parameters():
        if name.endswith(".weight") and ("attention" in name or "intermediate" in name or "output.dense" in name) \
                and p.dim() == 2 and name in state:
            a, b = p.data == 0, state[name] == 0
            same += int((a == b).sum())
            total += a.numel()
    return same / max(total, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--calibration", default="data/sentences/calibration.txt")
    ap.add_argument("--heldout", default="data/sentences/heldout.txt")
    ap.add_argument("--prunekit-unstructured", help="PruneKit folder pruned by wanda 50%% unstructured")
    ap.add_argument("--prunekit-24", help="PruneKit folder pruned by wanda 2:4")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    calibration, heldout = lines(args.calibration), lines(args.heldout)
    dense = SentenceTransformer(args.model, device="cpu")
    ref = embed(dense, heldout)
    out = {}
    for structure, mine in [("unstructured", args.prunekit_unstructured), ("2:4", args.prunekit_24)]:
        for method in ["wanda", "magnitude"]:
            m = prune(SentenceTransformer(args.model, device="cpu"), dense.tokenizer, calibration, method, structure)
            key = f"{method} {structure}"
            out[key] = {"torch_mean_cosine": mean_cosine(embed(m, heldout), ref)}
            print(key, "torch", out[key]["torch_mean_cosine"], flush=True)
            if mine and method == "wanda":
                out[key]["prunekit_mean_cosine"] = mean_cosine(embed(prunekit_model(mine, args.model), heldout), ref)
                out[key]["zero_pattern_agreement"] = agreement(m, mine)
            print(key, json.dumps(out[key]), flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
