# syntax=docker/dockerfile:1
# lstm-detector: slim, non-root (uid 10001), CPU-only torch, read-only root filesystem friendly.
#   docker build -t lstm-detector:0.1.0 .
#   docker run --rm --read-only -v detector-data:/var/lib/detector \
#     -e DETECTOR_KAFKA_BOOTSTRAP_SERVERS=kafka:9092 lstm-detector:0.1.0

# ---- build: a virtualenv with CPU torch and the package, copied whole into the runtime stage.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The CPU build of torch first, from PyTorch's CPU index (a layer of its own, cached across code
# changes). pyproject pins torch>=2.13.0,<2.14, which 2.13.0+cpu already satisfies, so the
# `pip install .` below never reaches for the multi-GB CUDA wheels on PyPI.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
WORKDIR /src
# pyproject names README.md as the long description: the build needs it.
COPY pyproject.toml README.md ./
COPY detector ./detector
# Runtime dependencies only (no dev/broker extras); pip byte-compiles here, at build time,
# so nothing needs to write .pyc files at run time.
RUN pip install . \
 && python -c "import torch, detector; assert torch.version.cuda is None, torch.__version__" \
 && detector --version

# ---- runtime
FROM python:3.11-slim
LABEL org.opencontainers.image.title="lstm-detector" \
      org.opencontainers.image.description="Streaming anomaly detection on Kafka (LSTM autoencoder)" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 detector \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/detector --shell /usr/sbin/nologin detector \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/detector
COPY --from=build /opt/venv /opt/venv
# HOME and TMPDIR point at the one writable place, so the container runs with a read-only root
# filesystem (mount a volume, emptyDir or tmpfs there).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1 \
    HOME=/var/lib/detector \
    TMPDIR=/var/lib/detector \
    XDG_CACHE_HOME=/var/lib/detector/.cache \
    DETECTOR_LOG_FORMAT=json
VOLUME ["/var/lib/detector"]
WORKDIR /var/lib/detector
USER 10001:10001
# Exec form: SIGTERM reaches the daemon, which finishes the batch, flushes alerts, commits
# offsets and closes within DETECTOR_SERVICE_SHUTDOWN_TIMEOUT_S.
ENTRYPOINT ["detector"]
CMD ["run"]
