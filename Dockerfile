# syntax=docker/dockerfile:1
# check=skip=InvalidDefaultArgInFrom
# Every EventHub image. Build from the repository root, naming the package it runs:
#   docker build --build-arg SERVICE=event_service -t eventhub/event-service .
# SERVICE (gateway, auth_service, event_service, sharing_service or history_service) has
# no default, on purpose (hence the skipped check): a build that forgets it fails. The five
# images share every layer; only their last stage (port, healthcheck, command) differs.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG SERVICE

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies get their own layer, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip install -r requirements.txt
COPY . .
RUN pip install --no-deps . && pip check

FROM ${PYTHON_IMAGE} AS runtime
# /etc/eventhub/keys belongs to the app user so that a new volume mounted there (Compose's
# `eventhub-keys`) takes that owner and `python -m common.keygen` can write into it.
RUN groupadd --system --gid 10001 eventhub \
    && useradd --system --uid 10001 --gid eventhub --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin eventhub \
    && install -d -o 10001 -g 10001 -m 0700 /etc/eventhub/keys
COPY --from=builder /opt/venv /opt/venv
# Bytecode was compiled at install time; nothing is written outside /tmp at run time.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
WORKDIR /app
USER 10001:10001

# gRPC health of the whole server, on the port of the address setting HEALTH_ADDR_SETTING
# names (its own EVENTHUB_*_ADDR).
FROM runtime AS grpc-service
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, grpc; from grpc_health.v1 import health_pb2 as pb, health_pb2_grpc as rpc; from common.config import CommonSettings, listen_port; port = listen_port(getattr(CommonSettings(), os.environ['HEALTH_ADDR_SETTING'])); reply = rpc.HealthStub(grpc.insecure_channel(f'127.0.0.1:{port}')).Check(pb.HealthCheckRequest(), timeout=3); raise SystemExit(reply.status != pb.HealthCheckResponse.SERVING)"]

FROM grpc-service AS auth_service
ENV HEALTH_ADDR_SETTING=auth_addr
EXPOSE 50051
CMD ["python", "-m", "auth_service"]

FROM grpc-service AS event_service
ENV HEALTH_ADDR_SETTING=events_addr
EXPOSE 50052
CMD ["python", "-m", "event_service"]

FROM grpc-service AS sharing_service
ENV HEALTH_ADDR_SETTING=sharing_addr
EXPOSE 50053
CMD ["python", "-m", "sharing_service"]

FROM grpc-service AS history_service
ENV HEALTH_ADDR_SETTING=history_addr
EXPOSE 50054
CMD ["python", "-m", "history_service"]

FROM runtime AS gateway
ENV EVENTHUB_GATEWAY_HOST=0.0.0.0
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('EVENTHUB_GATEWAY_PORT', '8000')}/healthz\", timeout=3)"]
CMD ["python", "-m", "gateway"]

# The image is the stage SERVICE names.
FROM ${SERVICE}
