# One image for the five Sada services:
# `docker run sada serve intake|router|campaigns|notifier|archive`.
#
# Stage 1 resolves the locked dependencies with uv into /app/.venv; stage 2 copies the venv
# and the source onto a clean python:3.11-slim and runs as an unprivileged user. The project
# is installed editable on purpose: shared/directory.py finds deploy/config next to the source
# (/app/deploy/config), which is also where compose and Kubernetes mount the real config.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /app
# Dependencies first: this layer is reused until pyproject.toml or uv.lock change.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project --no-cache
COPY README.md ./
COPY shared ./shared
COPY services ./services
COPY deploy/config ./deploy/config
# The read-only root filesystem in production cannot take __pycache__ later: compile now.
RUN uv sync --frozen --no-dev --no-cache \
    && python -m compileall -q shared services

FROM ${PYTHON_IMAGE} AS runtime
ARG SADA_UID=10001
LABEL org.opencontainers.image.title="sada" \
      org.opencontainers.image.description="Sada: routes e-participation feedback to the ministry unit that owns it" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid "${SADA_UID}" sada \
    && useradd --system --uid "${SADA_UID}" --gid sada --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin sada \
    && install -d -o sada -g sada -m 0750 /var/lib/sada/witness
# (The archive's checkpoint witness: a named volume mounted here starts owned by the service user.)
WORKDIR /app
# Owned by root and not writable by the service user: the code cannot be changed at run time.
COPY --from=build /app /app
# Production unless told otherwise: start-up then refuses default or missing secrets
# (`-e SADA_ENVIRONMENT=local` for a demo with the local defaults).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SADA_ENVIRONMENT=production \
    SADA_HTTP_HOST=0.0.0.0 \
    SADA_LOG_JSON=true
USER ${SADA_UID}:${SADA_UID}
EXPOSE 8001 8002 8003 8004 8005
# /health answers 503 when a dependency is down; urlopen raises on it, so the check fails.
# The port is SADA_HTTP_PORT, else the default of the service named on the command line.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os,urllib.request as r;a=open('/proc/1/cmdline','rb').read().split(b'\\0');p=os.environ.get('SADA_HTTP_PORT') or {b'intake':8001,b'router':8002,b'notifier':8003,b'archive':8004,b'campaigns':8005}.get(a[-2] if len(a)>1 else b'',8001);r.urlopen(f'http://127.0.0.1:{p}/health',timeout=4)"]
ENTRYPOINT ["sada"]
CMD ["serve", "intake"]
