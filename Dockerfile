# One image for every HCRM process; the command picks what runs (docs/DEPLOYMENT.md):
#   hcrm init                      declare exchanges and queues (one-shot / init container)
#   hcrm run <service>             intake | followup | appointments | complaints | analytics
#                                  (/metrics on HCRM_METRICS_PORT, 9100)
#   gunicorn -c deploy/gunicorn.conf.py --worker-tmp-dir /dev/shm services.gateway.wsgi:app
#                                  the HTTP gateway on 8080 (/healthz, /readyz, /metrics)
#
# Build: docker build -t hcrm:0.1.0 .
# Pin PYTHON_IMAGE to a digest in your registry for reproducible builds.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/hcrm
ENV PATH=/opt/hcrm/bin:$PATH
WORKDIR /src

# 1. Dependencies only. This layer is rebuilt when pyproject.toml changes, not when the
#    source does: [project].dependencies are installed from pyproject.toml alone.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(deps))" > /tmp/requirements.txt \
 && pip install "setuptools>=77" wheel \
 && pip install -r /tmp/requirements.txt

# 2. The source, installed without touching the dependencies again.
#    README.m[d]: copied when it exists (pyproject names it as the long description).
COPY pyproject.toml README.m[d] ./
COPY shared ./shared
COPY services ./services
COPY deploy ./deploy
RUN pip install --no-deps --no-build-isolation . \
 && hcrm --help > /dev/null \
 && cd / && python -W ignore -c "import shared.runner, services.gateway.app"

# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="hcrm" \
      org.opencontainers.image.description="HCRM services and gateway (one image; the command picks the process)" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 hcrm \
 && useradd --system --uid 10001 --gid hcrm --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin hcrm

COPY --from=build /opt/hcrm /opt/hcrm

# The package is installed in /opt/hcrm; /app holds only what is read as files at run time:
# the gunicorn settings and the default YAML config (HCRM_CONFIG may point elsewhere,
# e.g. a mounted ConfigMap). Environment always wins over the YAML (shared/config.py).
WORKDIR /app
COPY deploy/gunicorn.conf.py deploy/gunicorn.conf.py
COPY deploy/config/ deploy/config/

ENV PATH=/opt/hcrm/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HCRM_CONFIG=/app/deploy/config/hcrm.yaml \
    HCRM_METRICS_PORT=9100 \
    HCRM_METRICS_HOST=0.0.0.0 \
    GATEWAY_HOST=0.0.0.0

USER 10001:10001
EXPOSE 8080 9100 2575

# Services answer /metrics on HCRM_METRICS_PORT; the gateway sets
# HCRM_HEALTHCHECK_URL=http://127.0.0.1:8080/healthz. A one-shot `hcrm init` container
# should disable the healthcheck (docker-compose.yml does).
HEALTHCHECK --interval=30s --timeout=5s --start-period=40s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('HCRM_HEALTHCHECK_URL') or 'http://127.0.0.1:%s/metrics' % os.environ.get('HCRM_METRICS_PORT', '9100'), timeout=4)"]

CMD ["hcrm", "--help"]
