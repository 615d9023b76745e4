# syntax=docker/dockerfile:1
# ddbcache as a container image, made to run as a sidecar next to an application (docs/sidecar.md).
#
#   docker build -t ddbcache .
#
# The runtime image holds the ddbcache binary, the example config and nothing else: no shell, no
# package manager, no curl. The HEALTHCHECK therefore runs the binary itself (`ddbcache
# healthcheck`, which GETs /healthz on the configured admin listener).
#
# Configure it with a mounted file at /etc/ddbcache/ddbcache.toml (DDBCACHE_CONFIG below points
# there; the baked-in copy is config/ddbcache.toml, i.e. the defaults) and DDBCACHE_*
# environment variables, which override the file (docs/config.md). Flags after the image name
# override both, but the HEALTHCHECK does not see flags: move the admin listener with
# DDBCACHE_ADMIN_LISTEN or the file, not with --admin-listen.
#
# tests/sidecar.rs parses this file (ENV, ENTRYPOINT, CMD, HEALTHCHECK, EXPOSE, USER, COPY) and
# runs the real binary with exactly these settings, so what the image runs is what the tests
# exercise.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# The cache mounts keep the crate registry and target/ between builds. A cache mount is not part
# of the image, so the binary is copied out of it in the same step. SQLite (embedded upstream) is
# compiled in and TLS is rustls, so the binary needs only glibc and libgcc_s at run time.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ddbcache \
    && install -D -m 0755 target/release/ddbcache /out/ddbcache

# distroless/cc: glibc, libgcc_s, /etc/passwd with the nonroot user (65532), and CA certificates,
# which the AWS credential chain's HTTPS client (STS for IRSA, SSO) reads from the system.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ddbcache /usr/local/bin/ddbcache
COPY config/ddbcache.toml /etc/ddbcache/ddbcache.toml
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# The client listener stays on loopback: a sidecar's application reaches it over the shared
# network namespace (a Kubernetes pod, or docker compose's network_mode "service:app"), and no
# one else should. To serve other hosts set DDBCACHE_LISTEN=0.0.0.0:8000 and configure client
# authentication ([auth] in the config file). The admin listener (/metrics, /healthz, /readyz;
# no DynamoDB data) binds all interfaces so kubelet probes and Prometheus can reach it.
ENV DDBCACHE_CONFIG=/etc/ddbcache/ddbcache.toml \
    DDBCACHE_LISTEN=127.0.0.1:8000 \
    DDBCACHE_ADMIN_LISTEN=0.0.0.0:9464
EXPOSE 8000 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/ddbcache", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/ddbcache"]
