# The atoll server as a container image.
#
#   docker build -t atoll .
#   docker run --rm -p 3000:3000 -v "$PWD/examples/hello:/app:ro" atoll       # an app directory
#   docker run --rm -p 3000:3000 -v "$PWD/dist:/app:ro" atoll serve /app/app.atoll --listen 0.0.0.0:3000
#
# The cache mounts below need BuildKit, which `docker build` (Docker 23 and
# later), buildx and buildah/podman use; the legacy builder
# (DOCKER_BUILDKIT=0) does not read them. No `# syntax=` line: that would
# fetch a frontend image at build time, and the built-in one knows them.
# deploy/check.py checks this file against the code (flags, paths, ports).

# The workspace's rust-version (Cargo.toml) or later; check.py compares them.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# Only what `cargo build -p atoll` reads: the workspace, its crates, and the
# SDK sources that crates/atoll/build.rs embeds for `atoll new`.
# .dockerignore keeps everything else (target/, .git, examples) out of the
# context.
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY sdk/rust sdk/rust
# `dist`: release plus fat LTO (Cargo.toml). The registry and target/ live in
# cache mounts, so a rebuild after a source change compiles only what
# changed; the binary is copied out because a cache mount is not part of the
# image. Copied without its line tables (a smaller image; they only give a
# panic's backtrace its file:line); its symbols stay, so the backtrace still
# names the functions.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist -p atoll --locked \
 && strip --strip-debug -o /usr/local/bin/atoll target/dist/atoll

# The same Debian release as the builder, so the binary finds the glibc it
# was linked against. ca-certificates: functions' outbound HTTPS verifies
# servers against the system's roots.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 atoll \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin atoll \
 && mkdir -p /app /var/lib/atoll /var/cache/atoll \
 && chown atoll:atoll /var/lib/atoll /var/cache/atoll
COPY --from=build /usr/local/bin/atoll /usr/local/bin/atoll

# Embedded stores (redb) go to a volume rather than `.atoll` beside the app,
# which may be a read-only mount. The compile cache is a subdirectory because
# atoll makes it 0700, which it can only do to a directory it owns (a
# Kubernetes emptyDir mounted at /var/cache/atoll is not its own).
ENV ATOLL_DATA_DIR=/var/lib/atoll \
    ATOLL_CACHE_DIR=/var/cache/atoll/modules
VOLUME ["/var/lib/atoll"]

# The app: a directory holding atoll.toml mounted (or copied) at /app, or a
# bundle served with `serve /app/app.atoll` (deploy/app.Dockerfile bakes one
# in).
WORKDIR /app
USER 10001:10001
EXPOSE 3000
# /-/ready answers 200 once the app is loaded and served. There is no curl
# in this image (it would add a dozen libraries for one probe), and atoll
# has no HTTP client command (`atoll call` runs functions in-process), so
# bash opens the connection itself. The port is CMD's; change both together.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/3000 && printf 'GET /-/ready HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 2 _ status _ <&3 && [ \"$status\" = 200 ]"]
ENTRYPOINT ["atoll"]
CMD ["serve", "/app", "--listen", "0.0.0.0:3000"]
