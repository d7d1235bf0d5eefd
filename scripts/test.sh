#!/usr/bin/env bash
# Runs the whole test suite: a Python with TensorBoard (for the event-file check) is set up
# once in target/tensorboard-venv, then `cargo test --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/tensorboard-venv
if ! "$venv/bin/python" -c "import tensorboard" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check tensorboard
fi
export VISIONNET_TENSORBOARD_PYTHON="$PWD/$venv/bin/python"
export VISIONNET_REQUIRE_TENSORBOARD=1
cargo test --release "$@"
