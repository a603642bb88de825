# advguard backend image: the API (`advguard serve`) and the Celery workers (`advguard worker`).
# Build from the repository root: docker build -f docker/backend.Dockerfile .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    ADVGUARD_DATA_DIR=/data

# jemalloc: the CLI re-executes itself with it when present (~2-3x faster attacks on CPU).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libjemalloc2 \
    && rm -rf /var/lib/apt/lists/*

# torch first, from the CPU-only index, so the install below finds `torch==2.13.0` satisfied
# (2.13.0+cpu) and pip never pulls the multi-gigabyte CUDA wheels from PyPI.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY backend /src/backend
# onnx2torch without its torchvision requirement (see backend/pyproject.toml's onnx extra)
RUN pip install '/src/backend[onnx]' && pip install --no-deps onnx2torch==1.5.15 && rm -rf /src

# Unprivileged user; /data is created owned by it so a fresh named volume mounted there
# inherits that ownership (SQLite database + artifacts live there).
RUN useradd --create-home --uid 10001 advguard \
    && mkdir -p /data \
    && chown advguard:advguard /data
USER advguard
WORKDIR /data
VOLUME ["/data"]

EXPOSE 8000
CMD ["advguard", "serve", "--host", "0.0.0.0", "--port", "8000"]
