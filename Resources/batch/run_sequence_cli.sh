#!/usr/bin/env bash
# The same sequence as run_sequence_slicer.py, with the plain command line (no Slicer).
#   Resources/batch/run_sequence_cli.sh WS DATASET...     (env: FOUNDATION=demo PRESET=cpu_demo DEVICE=auto PYTHON=python)
# Exit status: that of the first failing step (2 bad input, 3 cancelled, 1 internal error), else 0.
set -euo pipefail
if [ "$#" -lt 2 ]; then
  echo "usage: $0 WORKSPACE DATASET..." >&2
  exit 2
fi
WS="$1"; shift
PY="${PYTHON:-python}"
medseqft() { "$PY" -m MedSeqFTLib "$@"; }
if [ ! -f "$WS/workspace.json" ]; then
  medseqft init "$WS" --foundation "${FOUNDATION:-demo}" --preset "${PRESET:-cpu_demo}"
fi
for dataset in "$@"; do
  medseqft add-task "$WS" "$dataset"
done
medseqft select "$WS"
medseqft refine "$WS" --device "${DEVICE:-auto}"
medseqft evaluate "$WS"
medseqft status "$WS"
