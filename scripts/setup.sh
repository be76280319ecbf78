#!/usr/bin/env bash
# Installs PruneKit's system packages (idempotent: only what is missing, apt-get update only then).
set -euo pipefail
# fortunes: the English text of scripts/make-sentences.py (sentence-encoder calibration and distillation)
packages=(libomp-dev libopenblas-dev zlib1g-dev pkg-config dataset-fashion-mnist gzip fortunes)
# `setup.sh mpi`: also Open MPI, for data-parallel runs (scripts/prunekit-mpi) and their tests
if [ "${1:-}" = "mpi" ]; then packages+=(libopenmpi-dev openmpi-bin); fi
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "setup: swift is not on PATH (Swift 6.1 or later is required)" >&2; exit 1; }
