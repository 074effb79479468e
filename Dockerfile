# salesbot as a container: `docker build -t salesbot .`, then run with a volume for the
# embedded store (README, "Running in a container"). Two stages: the build stage installs
# the package and its exact pins (constraints.txt) into a virtual environment; the runtime
# stage copies only that environment and runs as an unprivileged user.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY adapters ./adapters
COPY bot ./bot
COPY domain ./domain
COPY storage ./storage
RUN python -m venv /opt/salesbot \
    && /opt/salesbot/bin/pip install -c constraints.txt .

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/salesbot --create-home salesbot
COPY --from=build /opt/salesbot /opt/salesbot
# Listens on every interface inside the container; the platform's settings (Slack, Teams,
# the lead feed) come from the environment. The playground stays off here unless
# SALESBOT_PLAYGROUND_TOKEN is set: it refuses to serve off loopback without one.
ENV PATH=/opt/salesbot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SALESBOT_DB=/var/lib/salesbot/salesbot.db \
    SALESBOT_HOST=0.0.0.0 \
    SALESBOT_PORT=3000 \
    SALESBOT_LOG_FORMAT=json
USER salesbot
WORKDIR /var/lib/salesbot
VOLUME ["/var/lib/salesbot"]
EXPOSE 3000
# `salesbot serve` drains on SIGTERM: it stops listening, finishes the requests under way
# and releases its outbox leases, so a rolling deploy loses nothing.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('SALESBOT_PORT', '3000') + '/healthz', timeout=4)"]
ENTRYPOINT ["salesbot"]
CMD ["serve"]
