# ddbcache as a container (e.g. a sidecar). Build: docker build -t ddbcache .
# Run:   docker run -p 8000:8000 -p 9464:9464 ddbcache
# The image runs the same binary and flags the test suite exercises (tests/aws_upstream.rs
# starts the binary with --listen/--admin-listen/--upstream); configure it with a mounted
# file (--config /etc/ddbcache/ddbcache.toml) or DDBCACHE_* environment variables.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin ddbcache

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/ddbcache --create-home ddbcache
COPY --from=build /src/target/release/ddbcache /usr/local/bin/ddbcache
COPY config/ddbcache.toml /etc/ddbcache/ddbcache.toml
USER ddbcache
EXPOSE 8000 9464
# In a container the listeners must bind all interfaces to be reachable from outside it.
ENV DDBCACHE_LISTEN=0.0.0.0:8000 \
    DDBCACHE_ADMIN_LISTEN=0.0.0.0:9464
ENTRYPOINT ["/usr/local/bin/ddbcache"]
