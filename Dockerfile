# syntax=docker/dockerfile:1
# lstm-detector: slim, non-root (uid 10001), CPU-only torch, read-only root filesystem friendly.
#   docker build -t lstm-detector:0.1.0 .
#   docker run --rm --read-only -v detector-data:/var/lib/detector \
#     -e DETECTOR_KAFKA_BOOTSTRAP_SERVERS=kafka:9092 lstm-detector:0.1.0

# The base image by digest, so a rebuild gets the same Python and Debian until this line
# changes. To move to a newer python:3.11-slim:
#   docker buildx imagetools inspect python:3.11-slim   # the digest of the index, "Digest:"
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# ---- build: a virtualenv with CPU torch and the package, copied whole into the runtime stage.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Every runtime dependency at the version and with the hashes of requirements.lock (scripts/lock
# writes it): torch 2.13.0+cpu from PyTorch's CPU index, the rest from PyPI. --require-hashes
# refuses anything unpinned or altered, and --no-deps anything the lock does not name. A layer
# of its own, cached across code changes.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock \
        --extra-index-url https://download.pytorch.org/whl/cpu
# pyproject names README.md as the long description: the build needs it.
COPY pyproject.toml README.md ./
COPY detector ./detector
# The package alone, built with the locked setuptools (no build isolation: nothing unpinned is
# fetched); pip byte-compiles here, at build time, so nothing writes .pyc files at run time.
RUN pip install --no-deps --no-build-isolation . \
 && pip check \
 && python -c "import torch, detector; assert torch.version.cuda is None, torch.__version__" \
 && detector --version

# ---- runtime
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="lstm-detector" \
      org.opencontainers.image.description="Streaming anomaly detection on Kafka (LSTM autoencoder)" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 detector \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/detector --shell /usr/sbin/nologin detector \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/detector
COPY --from=build /opt/venv /opt/venv
# HOME and TMPDIR point at the one writable place, so the container runs with a read-only root
# filesystem (mount a volume, emptyDir or tmpfs there). torch's import needs a writable TMPDIR:
# without one the daemon exits 2 with one line saying so.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1 \
    HOME=/var/lib/detector \
    TMPDIR=/var/lib/detector \
    XDG_CACHE_HOME=/var/lib/detector/.cache \
    DETECTOR_LOG_FORMAT=json
VOLUME ["/var/lib/detector"]
# /metrics, /healthz and /readyz (DETECTOR_SERVICE_METRICS_PORT).
EXPOSE 9108
WORKDIR /var/lib/detector
USER 10001:10001
# Exec form: SIGTERM reaches the daemon, which finishes the batch, flushes alerts, commits
# offsets and closes within DETECTOR_SERVICE_SHUTDOWN_TIMEOUT_S.
ENTRYPOINT ["detector"]
CMD ["run"]
