#!/usr/bin/env bash
# Build mactl's container image (./Containerfile) on a machine without a registry or a
# container daemon: podman (daemonless) with the vfs storage driver and chroot isolation, on a
# Debian bookworm root made by mmdebstrap from Debian's mirror (Python 3.11 and its venv
# module) and imported as the base. Then a smoke test runs `mactl --version` and imports the
# executors' libraries inside the image's root.
#   devtools/image/build.sh [TAG]        default TAG: localhost/mactl:ci
# The base is made once (cached in /var/cache/mactl/image); the build's layers are podman's
# cache. A lock (build.lock there) tells waiters that a build is running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
tag="${1:-localhost/mactl:ci}"
cache=/var/cache/mactl/image
base=localhost/mactl-base:bookworm
podman=(podman --storage-driver vfs)
mkdir -p "$cache"
exec 9>"$cache/build.lock"
flock 9

missing=()
command -v podman >/dev/null || missing+=(podman)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
if [[ ${#missing[@]} -gt 0 ]]; then
  [[ "$(id -u)" == 0 ]] || { echo "building the image needs: apt-get install ${missing[*]}" >&2; exit 1; }
  { apt-get install -y -qq "${missing[@]}" || { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; }; } </dev/null >/dev/null
fi

if ! "${podman[@]}" image exists "$base"; then
  if [[ ! -s "$cache/bookworm-python.tar" ]]; then
    echo "==> making the base: Debian bookworm with python3 (mmdebstrap)"
    mmdebstrap --quiet --format=tar --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$cache/bookworm-python.tar.part" http://deb.debian.org/debian
    mv "$cache/bookworm-python.tar.part" "$cache/bookworm-python.tar"
  fi
  "${podman[@]}" import --quiet "$cache/bookworm-python.tar" "$base" >/dev/null
fi

# pip inside the build reaches the package index as this machine does: its CA bundle (and
# pip.conf, when there is one) are mounted read-only for the RUN steps, never copied in.
mounts=(-v /etc/ssl/certs:/etc/ssl/certs:ro)
[[ -f /etc/pip.conf ]] && mounts+=(-v /etc/pip.conf:/etc/pip.conf:ro)
echo "==> podman build $tag (base $base)"
"${podman[@]}" build --quiet --isolation chroot --network host "${mounts[@]}" \
  --build-arg BASE="$base" -t "$tag" -f Containerfile . >/dev/null

echo "==> smoke test inside the image's root"
root="$("${podman[@]}" image mount "$tag")"
trap '"${podman[@]}" image unmount "$tag" >/dev/null 2>&1 || true' EXIT
chroot --userspec=10001:10001 "$root" /opt/mactl/bin/mactl --version
chroot --userspec=10001:10001 "$root" /opt/mactl/bin/python -c \
  'import confluent_kafka, kubernetes, zstandard, lz4, mactl.providers.backfill, mactl.providers.replay; print("the executors import")'
"${podman[@]}" image inspect --format '{{.Id}}' "$tag"
