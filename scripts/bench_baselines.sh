#!/usr/bin/env bash
# Training throughput (forward, backward, Adam step; median of timed steps on synthetic 32x32
# batches) of each CIFAR-form baseline and of the cnn with each lateral / multi-feature variant.
# Usage: scripts/bench_baselines.sh [BINARY]   (default target/release/visionnet)
# Seconds per CIFAR-10 epoch = 45,000 training images (50,000 minus the 5,000 validation) / images/s.
set -euo pipefail
B=${1:-target/release/visionnet}
for m in vgg16 vgg16_bn resnet50 xception efficientnet_lite0; do
  echo "== $m --form cifar"; uptime
  "$B" bench --model "$m" --form cifar --batch-size 32 --warmup 1 --steps 3
done
for v in "--lateral none" "--lateral residual" "--lateral dense" "--conv inception" "--conv separable"; do
  echo "== cnn $v"; uptime
  # shellcheck disable=SC2086
  "$B" bench --batch-size 64 --warmup 2 --steps 8 $v
done
