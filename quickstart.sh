#!/usr/bin/env bash
# One-command set-up for a fresh machine: creates .venv, installs torch 2.13.0 first (so pip
# does not pull a multi-GB CUDA build on CPU machines), then MedSeqFTLib, then runs:
#   bash quickstart.sh demo [demo args]   the main job (phantoms -> M0 -> 3 tasks -> refine -> report)
#   bash quickstart.sh test [pytest args] the test suite
set -euo pipefail
cd "$(dirname "$0")"
what="${1:-demo}"; shift || true
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
$VPY -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! $VPY -c "import torch" >/dev/null 2>&1; then
  $VPY -m pip install -q "torch==${MEDSEQFT_TORCH_VERSION:-2.13.0}"
fi
case "$what" in
  demo)
    $VPY -m pip install -q -e .
    exec .venv/bin/medseqft demo "$@"
    ;;
  test)
    # pin the installed torch: nnunetv2 (a test dependency) pulls torchvision, which would otherwise
    # replace a CPU torch with the newest CUDA build
    $VPY -m pip install -q -e ".[test]" "torch==$($VPY -c "import torch; print(torch.__version__.split('+')[0])")"
    # the torchvision that comes with it (via timm) cannot load next to a CPU torch build and then
    # breaks transformers' imports (so PEFT); nnU-Net's planner, all the tests use, needs neither
    $VPY -m pip uninstall -y -q torchvision timm >/dev/null 2>&1 || true
    export QT_QPA_PLATFORM=offscreen OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
    exec $VPY -m pytest -q -p no:cacheprovider --timeout=900 "$@"
    ;;
  *)
    echo "usage: bash quickstart.sh demo|test [args]" >&2
    exit 2
    ;;
esac
