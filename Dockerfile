# flashgate: the edge gateway and the order backend in one image.
#
#   docker build -t flashgate .
#   docker run -p 8080:8080 -e FLASHGATE_LOGIN_SECRET=… -e FLASHGATE_EDGE_SECRET=… flashgate
#   docker run … flashgate flashgate-orders run --config conf/orders.yaml
#
# Build stage: Rust and cmake (Pingora builds zlib-ng with it). Runtime stage: Debian slim, the
# two binaries, conf/ and static/, a non-root user, a health check on the admin /healthz.
# tests/packaging.rs checks that every path copied and every command run here exists.

FROM rust:1.95-bookworm AS build
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY lua ./lua
COPY migrations ./migrations
RUN cargo build --release --locked --bin flashgate --bin flashgate-orders

FROM debian:bookworm-slim
# curl: the health check. ca-certificates: TLS to a managed Redis or PostgreSQL.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 flashgate \
    && useradd --system --uid 10001 --gid flashgate --home-dir /opt/flashgate --shell /usr/sbin/nologin flashgate
COPY --from=build /src/target/release/flashgate /src/target/release/flashgate-orders /usr/local/bin/
WORKDIR /opt/flashgate
# Relative paths of the configuration (static_dir, blocklist.file, store.path) are relative to
# this directory; data/ holds the embedded store's journal and the order backend's SQLite file.
COPY conf ./conf
COPY static ./static
RUN mkdir -p data && chown flashgate:flashgate data
USER 10001:10001
EXPOSE 8080 9090 8081
HEALTHCHECK --interval=10s --timeout=2s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:9090/healthz"]
STOPSIGNAL SIGTERM
CMD ["flashgate", "run", "--config", "conf/flashgate.yaml"]
