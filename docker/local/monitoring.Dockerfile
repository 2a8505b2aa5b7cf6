# Stand-ins for the monitoring profile's public images where no registry can be reached (CI
# here): Debian bookworm's packages on the local base, one target per image, each with the
# public image's port, user (nobody) and a binary as its entrypoint, so docker-compose.yml passes
# the same flags to either. Built by `scripts/docker.sh local-bases`:
#   --target prometheus         -> mediafleet-local/prometheus:2         (prom/prometheus)
#   --target redis-exporter     -> mediafleet-local/redis-exporter:1     (oliver006/redis_exporter)
#   --target postgres-exporter  -> mediafleet-local/postgres-exporter:0  (prometheuscommunity/postgres-exporter)
#   --target nginx-exporter     -> mediafleet-local/nginx-exporter:0     (nginx/nginx-prometheus-exporter)
#   --target blackbox-exporter  -> mediafleet-local/blackbox-exporter:0  (prom/blackbox-exporter)
ARG BASE=mediafleet-local/python:3.11-bookworm
FROM ${BASE} AS packages
# --no-install-recommends: the binaries without the packages' web-console JavaScript extras
RUN apt-get update && apt-get install -y --no-install-recommends prometheus prometheus-redis-exporter \
        prometheus-postgres-exporter prometheus-nginx-exporter prometheus-blackbox-exporter \
    && rm -rf /var/lib/apt/lists/*

FROM packages AS prometheus
RUN mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]

FROM packages AS redis-exporter
USER nobody
EXPOSE 9121
ENTRYPOINT ["/usr/bin/prometheus-redis-exporter"]

FROM packages AS postgres-exporter
USER nobody
EXPOSE 9187
ENTRYPOINT ["/usr/bin/prometheus-postgres-exporter"]

FROM packages AS nginx-exporter
USER nobody
EXPOSE 9113
ENTRYPOINT ["/usr/bin/prometheus-nginx-exporter"]

FROM packages AS blackbox-exporter
USER nobody
EXPOSE 9115
ENTRYPOINT ["/usr/bin/prometheus-blackbox-exporter"]
