#!/usr/bin/env bash
# Builds the atoll image and runs it twice, where a container engine runs:
#   1. as built, with examples/hello mounted at /app (the default CMD), until
#      its HEALTHCHECK reports healthy;
#   2. as Kubernetes runs it (deploy/kubernetes): an app image with the
#      hello bundle baked in (deploy/app.Dockerfile), a read-only root, /tmp
#      on a tmpfs and the compile cache on a root-owned world-writable
#      directory, as an emptyDir is; then stopped with SIGTERM, which must
#      exit 0.
# Elsewhere it prints one line saying why the image was not built, and
# succeeds: a machine without a container engine is not a failure.
#
#   deploy/image-test.sh [path/to/atoll]     (default: target/debug/atoll)
#
# ATOLL_SKIP_IMAGE=1 skips it (a cold image build compiles the dist profile,
# fat LTO: many minutes on a small machine).
set -euo pipefail
cd "$(dirname "$0")/.."
atoll=${1:-target/debug/atoll}

if [ -n "${ATOLL_SKIP_IMAGE:-}" ]; then
  echo "image not built: ATOLL_SKIP_IMAGE is set"
  exit 0
fi
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  engine=docker
elif command -v podman >/dev/null && podman info >/dev/null 2>&1; then
  engine=podman
elif command -v buildah >/dev/null; then
  engine=buildah
else
  if command -v docker >/dev/null; then why="the docker daemon is not reachable (docker info fails)"; else why="neither docker, podman nor buildah is installed"; fi
  echo "image not built: $why"
  exit 0
fi

# The base images come from a registry these machines may not reach (only
# package registries are open here): without them there is nothing to test,
# which is not the Dockerfile's fault, so say so and pass.
rust_version=$(sed -n 's/^ARG RUST_VERSION=//p' Dockerfile)
for base in "rust:${rust_version}-slim-bookworm" "debian:bookworm-slim"; do
  if ! "$engine" image inspect "$base" >/dev/null 2>&1 && ! timeout 120 "$engine" pull -q "$base" >/dev/null 2>&1; then
    echo "image not built: the base image $base is neither present nor pullable with $engine"
    exit 0
  fi
done

tag="atoll:test"
app_tag="atoll-app:test"
name=atoll-image-test-$$
work=target/image-test
rm -rf "$work" && mkdir -p "$work"

# podman and buildah build OCI images unless told otherwise, and the OCI
# format has no HEALTHCHECK.
format=()
[ "$engine" = docker ] || format=(--format docker)
started=$(date +%s)
if [ "$engine" = buildah ]; then
  buildah build "${format[@]}" -t "$tag" .
else
  "$engine" build "${format[@]}" -t "$tag" .
fi
seconds=$(( $(date +%s) - started ))
size=$("$engine" image inspect --format '{{.Size}}' "$tag" 2>/dev/null || echo 0)
echo "image $tag built in ${seconds} s with $engine: $(( size / 1000000 )) MB"
if [ "$engine" = buildah ]; then
  echo "image not run: buildah builds images but does not run servers (install docker or podman)"
  exit 0
fi

cleanup() {
  # One at a time: podman removes neither when one of them does not exist.
  for c in "$name-dir" "$name-bundle"; do "$engine" rm -f -v "$c" >/dev/null 2>&1 || true; done
  # What atoll wrote there is the image user's, 0700: removed as that user.
  [ -d "$work/cache" ] && "$engine" run --rm -v "$PWD/$work/cache:/c" --entrypoint rm "$tag" -rf /c/modules >/dev/null 2>&1
  "$engine" rmi "$app_tag" >/dev/null 2>&1 || true
}
trap cleanup EXIT

fail() {
  echo "image test failed: $*" >&2
  for c in "$name-dir" "$name-bundle"; do
    "$engine" logs "$c" 2>&1 | tail -20 | sed "s/^/  $c: /" >&2 || true
  done
  exit 1
}

# The host port the engine chose for the container's 3000.
host_port() { "$engine" port "$1" 3000/tcp | head -1 | sed 's/.*://'; }

# Waits for /-/ready, then checks what the hello example answers.
answers() {
  local port=$1
  for _ in $(seq 1 60); do
    curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break
    sleep 0.5
  done
  [ "$(curl -fsS "http://127.0.0.1:$port/-/ready")" = '{"status":"ready"}' ] || fail "/-/ready on port $port"
  [ "$(curl -fsS "http://127.0.0.1:$port/hello/world?lang=fr")" = 'Bonjour, world!' ] || fail "GET /hello/world on port $port"
}

# The example's module, built by the CLI tests before this runs; built here
# if not (cargo finds nothing to do otherwise).
"$atoll" build examples/hello >/dev/null

# 1. The image as built: an app directory mounted read-only at /app.
"$engine" run -d --name "$name-dir" -p 127.0.0.1::3000 -v "$PWD/examples/hello:/app:ro" "$tag" >/dev/null
answers "$(host_port "$name-dir")"
# Docker runs the HEALTHCHECK on its own schedule; podman only from systemd
# timers, so it is run here instead.
if [ "$engine" = podman ]; then
  podman healthcheck run "$name-dir" >/dev/null || fail "HEALTHCHECK failed"
else
  for _ in $(seq 1 45); do
    health=$(docker inspect --format '{{.State.Health.Status}}' "$name-dir" 2>/dev/null || echo none)
    [ "$health" = healthy ] && break
    sleep 1
  done
  [ "$health" = healthy ] || fail "HEALTHCHECK status is $health after 45 s"
fi

# 2. As Kubernetes runs it: a bundle in an app image, a read-only root.
"$atoll" bundle examples/hello -o "$work/app.atoll" >/dev/null
"$engine" build "${format[@]}" -t "$app_tag" --build-arg ATOLL_IMAGE="$tag" -f deploy/app.Dockerfile "$work" >/dev/null
# An emptyDir is root's, mode 0777 (a tmpfs's mode= is not honoured by every
# engine, so a directory of the host's stands in for it).
mkdir -p "$work/cache" && chmod 0777 "$work/cache"
"$engine" run -d --name "$name-bundle" -p 127.0.0.1::3000 --read-only \
  --tmpfs /tmp -v "$PWD/$work/cache:/var/cache/atoll" "$app_tag" >/dev/null
answers "$(host_port "$name-bundle")"
# atoll makes the cache directory itself, below the mount (it must own it),
# and the module compiled at load is in it.
if "$engine" logs "$name-bundle" 2>&1 | grep -q 'compile cache disabled'; then
  fail "the compile cache is not writable on a read-only root"
fi
"$engine" exec "$name-bundle" bash -c 'compgen -G "/var/cache/atoll/modules/*" >/dev/null' \
  || fail "nothing in the compile cache after loading the app"
"$engine" stop --time 35 "$name-bundle" >/dev/null
code=$("$engine" inspect --format '{{.State.ExitCode}}' "$name-bundle")
[ "$code" = 0 ] || fail "SIGTERM exit code $code, not 0"
echo "image ran: /-/ready and GET /hello/world answered from an app directory and from a bundle on a read-only root; healthy; SIGTERM exits 0"
