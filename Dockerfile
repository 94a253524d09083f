# syntax=docker/dockerfile:1
# CXR pneumonia screening service.
#   CPU (default):  docker build -t cxr-screen .
#   CUDA:           docker build --build-arg TORCH_VARIANT=cu128 -t cxr-screen:cuda .
#                   (or a CUDA base image with Python 3.11: --build-arg BASE_IMAGE=...)
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG TORCH_VARIANT=cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from PyTorch's own index for the chosen variant (CPU wheels are ~10x smaller)
RUN pip install "torch==2.14.1" "torchvision==0.29.1" --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}"
# a C compiler for models/_png_unfilter.c (PNG unfiltering): this stage only, the runtime image gets the
# built module and no compiler; any Debian gcc builds it
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY app ./app
COPY models ./models
RUN pip install .

FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="cxr-screen" \
      org.opencontainers.image.description="Chest X-ray pneumonia screening: probabilities and Grad-CAM over HTTP (triage aid, not a diagnosis)"
RUN groupadd --system --gid 10001 cxr && useradd --system --uid 10001 --gid cxr --home-dir /var/lib/cxr cxr \
    && mkdir -p /var/lib/cxr && chown cxr:cxr /var/lib/cxr
COPY --from=build /opt/venv /opt/venv
COPY --chown=root:root weights /opt/cxr/weights
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CXR_HOST=0.0.0.0 \
    CXR_PORT=8000 \
    CXR_WEIGHTS_DIR=/opt/cxr/weights \
    CXR_STATE_DIR=/var/lib/cxr
# registry of fine-tuned versions, jobs (SQLite), datasets, generated API key digests
VOLUME ["/var/lib/cxr"]
USER 10001:10001
WORKDIR /var/lib/cxr
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('CXR_PORT', '8000')}/readyz\", timeout=4)"]
# uvicorn handles SIGTERM: stops accepting, lets in-flight requests finish (30 s), then exits
STOPSIGNAL SIGTERM
CMD ["cxr", "serve"]
