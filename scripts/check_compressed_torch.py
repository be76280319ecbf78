#!/usr/bin/env python3
"""Checks that PruneKit's compressed model layout loads into PyTorch (CSR and BSR as torch sparse
tensors, packed N:M expanded from its values and group indices) equal to the dense export. Usage: python scripts/check_compressed_torch.py COMPRESSED.safetensors DENSE.safetensors
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
        fmt = meta.get(name + ".format", "csr")
        if fmt == "csr":
            w = torch.sparse_csr_tensor(c[name + ".crow_indices"], c[name + ".col_indices"], c[name + ".values"], size=(rows, cols))
            dense, kept = w.to_dense(), w._nnz()
        elif fmt.startswith("block:"):
            w = torch.sparse_bsr_tensor(c[name + ".crow_indices"], c[name + ".col_indices"], c[name + ".values"], size=(rows, cols))
            dense, kept = w.to_dense(), c[name + ".values"].numel()
        else:  # n:m: per row, cols/m groups of n slots (value, column in the group; 0x80 marks padding)
            n, m = (int(v) for v in fmt.split(":"))
            vals, idx = c[name + ".values"].reshape(rows, cols // m, n), c[name + ".nm_indices"].reshape(rows, cols // m, n).long()
            pad = (idx & 0x80) != 0
            col = torch.arange(cols // m).reshape(1, -1, 1) * m + (idx & 0x7F)
            dense = torch.zeros(rows, cols).scatter_add_(1, col.reshape(rows, -1), torch.where(pad, 0.0, vals).reshape(rows, -1))
            kept = int((~pad).sum())
        ok = torch.equal(dense.reshape(shape), d[name])
        print(f"{name} ({fmt}): {kept} kept of {rows * cols}, equal to the dense export: {ok}")
        if not ok:
            sys.exit(1)


if __name__ == "__main__":
    main()
