#!/usr/bin/env bash
# Trains the three shipped models on ../shared/data/chest_xray with the exact commands recorded in
# their cards. CPU-only takes about 1.5 hours on 2 cores; run it in the background:
#   nohup scripts/train_shipped.sh > runs/train_shipped.log 2>&1 &
# Each model's own log is weights/<name>/train.log. Pass model names to train only some.
set -euo pipefail
cd "$(dirname "$0")/.."
CXR=${CXR:-.venv/bin/cxr}
DATA=${DATA:-../shared/data/chest_xray}
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(efficientnet_lite0 simple_cnn resnet18)

for name in "${models[@]}"; do
  out=weights/$name
  mkdir -p "$out"
  case $name in
    efficientnet_lite0)
      args=(--arch efficientnet_lite0 --image-size 224 --epochs 5 --freeze-epochs 1 --lr 5e-4 --batch-size 32
            --notes "ImageNet-pretrained; 1 epoch with the backbone frozen, then full fine-tuning; 224 px") ;;
    simple_cnn)
      args=(--arch simple_cnn --image-size 128 --epochs 10 --lr 2e-3 --batch-size 32
            --notes "from scratch; 128 px input to fit CPU training time") ;;
    resnet18)
      args=(--arch resnet18 --image-size 128 --epochs 8 --lr 1e-3 --batch-size 32
            --notes "torchvision ResNet-18 from scratch; 128 px input to fit CPU training time") ;;
    *) echo "unknown model $name" >&2; exit 2 ;;
  esac
  echo "== $name: $(date -u +%FT%TZ)"
  "$CXR" train --data "$DATA" --out "$out" --name "$name" --version 1.0.0 --seed 0 "${args[@]}" 2>&1 | tee "$out/train.log"
  rm -rf "$out/checkpoints"
done
