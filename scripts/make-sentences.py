#!/usr/bin/env python3
"""Real English text for the sentence-encoder work: the quotes and jokes of Debian's `fortunes`
package, one per line, split deterministically into calibration, training and held-out files.

Usage: python3 scripts/make-sentences.py [out_dir=data/sentences]
(installs Debian's fortunes package first when it is missing, with apt-get, as scripts/setup.sh does)
Writes calibration.txt (512), train.txt (4,000), heldout.txt (1,000) and train-large.txt (every
fortune in neither calibration nor held-out: train.txt plus the rest): fortunes of 20-300
characters, whitespace collapsed, ASCII-art collections skipped, duplicates removed; the split is
by a hash of the text, so it never depends on file order.
"""
import glob, hashlib, os, re, shutil, subprocess, sys

SRC = "/usr/share/games/fortunes"
SKIP = {"art", "ascii-art"}


def ensure_fortunes():
    """Installs Debian's fortunes package when it is missing (apt-get, through sudo when not root)."""
    if subprocess.run(["dpkg", "-s", "fortunes"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    if sudo and not shutil.which("sudo"):
        sys.exit("make-sentences: Debian's fortunes package is missing and neither root nor sudo is available to install it")
    print("make-sentences: installing fortunes", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "fortunes"]):
        if subprocess.run(sudo + cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            sys.exit(f"make-sentences: '{' '.join(sudo + cmd)}' failed")


def main():
    ensure_fortunes()
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "sentences")
    seen, items = set(), []
    for path in sorted(glob.glob(f"{SRC}/*")):
        name = os.path.basename(path)
        if "." in name or name in SKIP or os.path.isdir(path):
            continue
        text = open(path, encoding="utf-8", errors="replace").read()
        for chunk in re.split(r"^%\s*$", text, flags=re.M):
            s = re.sub(r"\s+", " ", chunk).strip()
            if 20 <= len(s) <= 300 and s not in seen:
                seen.add(s)
                items.append(s)
    if len(items) < 5512:
        sys.exit(f"only {len(items)} fortunes found in {SRC}: install Debian's fortunes package")
    items.sort(key=lambda s: hashlib.sha256(s.encode()).hexdigest())
    os.makedirs(out, exist_ok=True)
    for name, part in (("calibration", items[:512]), ("train", items[512:4512]), ("heldout", items[4512:5512]),
                       ("train-large", items[512:4512] + items[5512:])):
        with open(os.path.join(out, name + ".txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(part) + "\n")
    print(f"{len(items)} fortunes → {out}: calibration 512, train 4000, heldout 1000")


if __name__ == "__main__":
    main()
