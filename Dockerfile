# lstm-detector: slim, non-root, CPU-only torch, read-only root filesystem friendly.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
# The CPU build of torch first, from PyTorch's CPU index: never the multi-GB CUDA wheels.
RUN /opt/venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu 'torch==2.13.0'
COPY pyproject.toml README.md ./
COPY detector ./detector
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim
RUN groupadd --system --gid 10001 detector \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/detector --shell /usr/sbin/nologin detector \
 && mkdir -p /var/lib/detector && chown 10001:10001 /var/lib/detector
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/detector \
    TMPDIR=/var/lib/detector \
    DETECTOR_LOG_FORMAT=json
# The one writable place when the root filesystem is mounted read-only.
VOLUME ["/var/lib/detector"]
WORKDIR /var/lib/detector
USER 10001:10001
ENTRYPOINT ["detector"]
CMD ["run"]
