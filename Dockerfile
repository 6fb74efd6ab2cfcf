# syntax=docker/dockerfile:1
# One image for every metering process; the command picks the service:
#   docker run IMAGE ingest | aggregator | rater | topics | migrate | catalog apply FILE
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The pinned dependency set first, so code changes do not reinstall it.
RUN python -m venv /opt/venv \
    && pip install pip==25.3
COPY requirements.lock /app/requirements.lock
RUN pip install -r /app/requirements.lock

# The package itself. It is installed in place (editable, as `make` does) because the
# ClickHouse migrations are read from deploy/clickhouse beside the source tree.
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY deploy/clickhouse ./deploy/clickhouse
COPY scripts/build_native.py ./scripts/build_native.py
# The aggregator's hot path compiled to C (services/infra/native.py), with a compiler
# installed for this step only; build/ keeps just the record of what was compiled.
RUN pip install --no-deps --no-build-isolation -e . \
    && apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && python scripts/build_native.py \
    && apt-get purge -y --auto-remove gcc libc6-dev && rm -rf /var/lib/apt/lists/* \
    && find build -mindepth 1 -not -name native-sources.json -delete \
    && python -m compileall -q shared services \
    && metering --help >/dev/null

# Unprivileged user; its home is the working and data directory (the aggregator's
# Faust state folder, and the embedded ClickHouse data when no server is configured).
RUN groupadd --system --gid 10001 metering \
    && useradd --system --uid 10001 --gid metering --home-dir /var/lib/metering --create-home metering
USER 10001:10001
WORKDIR /var/lib/metering
ENV METERING_DATA_DIR=/var/lib/metering \
    METERING_HTTP_HOST=0.0.0.0

# ingest, aggregator, rater (each service listens on its own; see README "Ports")
EXPOSE 8080 8081 8082

ENTRYPOINT ["metering"]
CMD ["--help"]
