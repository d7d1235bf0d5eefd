#!/usr/bin/env bash
# Runs the whole test suite: a test Python is set up once in target/test-venv (TensorBoard for
# the event-file check; torch 2.15.0, torchvision, timm and safetensors for the export check,
# tests/export.rs, which loads visionnet's exports into bench/pytorch_reference.py, torchvision
# and timm), then `cargo test --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/test-venv
if ! "$venv/bin/python" -c "import tensorboard, torch, torchvision, timm, safetensors, numpy" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir tensorboard torch==2.15.0 torchvision==0.29.2 timm==1.0.31 safetensors numpy
fi
export VISIONNET_TENSORBOARD_PYTHON="$PWD/$venv/bin/python"
export VISIONNET_REQUIRE_TENSORBOARD=1
export VISIONNET_TEST_PYTHON="$PWD/$venv/bin/python"
export VISIONNET_REQUIRE_TORCH=1
cargo test --release "$@"
