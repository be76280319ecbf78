#!/usr/bin/env python3
"""Checks that PruneKit's compressed model layout loads into PyTorch as CSR tensors equal to the
dense export. Usage: python scripts/check_compressed_torch.py COMPRESSED.safetensors DENSE.safetensors
(both from `prunekit finetune ... --layout compressed|plain`). Needs torch and safetensors.
"""
import sys
import torch
from safetensors import safe_open
from safetensors.torch import load_file


def main():
    cpath, dpath = sys.argv[1], sys.argv[2]
    c, d = load_file(cpath), load_file(dpath)
    meta = safe_open(cpath, "pt").metadata()
    names = sorted(k[: -len(".values")] for k in c if k.endswith(".values"))
    assert names, "no compressed weights in " + cpath
    for name in names:
        shape = [int(v) for v in meta[name + ".shape"].split(",")]
        rows = shape[0]
        cols = 1
        for s in shape[1:]:
            cols *= s
        w = torch.sparse_csr_tensor(c[name + ".crow_indices"], c[name + ".col_indices"], c[name + ".values"], size=(rows, cols))
        ok = torch.equal(w.to_dense().reshape(shape), d[name])
        print(f"{name}: {w._nnz()} kept of {rows * cols}, equal to the dense export: {ok}")
        if not ok:
            sys.exit(1)


if __name__ == "__main__":
    main()
