#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager from the published k8s.io/kubernetes
# module. Its go.mod points every k8s.io/* staging module at ./staging/..., which a module
# download does not carry, so a throwaway module requires k8s.io/kubernetes and replaces each
# staging module with its published twin (k8s.io/X v0.MINOR.PATCH for kubernetes v1.MINOR.PATCH).
# Output: $KUBE_CACHE/<version>/bin/{kube-apiserver,kube-controller-manager}; a second run with
# the binaries present does nothing.
set -euo pipefail
version="${KUBE_VERSION:-v1.37.2}"
cache="${KUBE_CACHE:-/var/cache/mactl/kube}"
go="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
bin="$cache/$version/bin"
if [[ -x "$bin/kube-apiserver" && -x "$bin/kube-controller-manager" ]]; then
  exit 0
fi
mkdir -p "$cache/$version"
# One build at a time (scripts/test starts one in the background; a test session may ask too):
# the second waits, then finds the binaries.
exec 9>"$cache/$version/build.lock"
flock 9
if [[ -x "$bin/kube-apiserver" && -x "$bin/kube-controller-manager" ]]; then
  exit 0
fi
staging_version="v0.${version#v1.}"
work="$cache/$version/module"
mkdir -p "$work" "$bin"
cd "$work"
"$go" mod download -json "k8s.io/kubernetes@$version" >/dev/null
upstream_mod="$("$go" env GOMODCACHE)/k8s.io/kubernetes@$version/go.mod"
go_line="$(grep -m1 '^go ' "$upstream_mod")"
{
  echo "module mactl.local/kubebuild"
  echo
  echo "$go_line"
  echo
  echo "require k8s.io/kubernetes $version"
  echo
  grep '=> ./staging/' "$upstream_mod" | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package kubebuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO
GOFLAGS="-mod=mod" "$go" mod tidy -e >/dev/null 2>&1 || true
# Low priority and few parallel compiles: the machine is shared. Into a folder of its own
# first, so that nobody ever finds one binary there and the other half-written.
out="$cache/$version/bin.new"
rm -rf "$out"
nice -n 19 env GOFLAGS="-mod=mod -p=${KUBE_BUILD_JOBS:-2}" CGO_ENABLED=0 \
  "$go" build -trimpath -ldflags "-s -w" -o "$out/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
mv "$out/kube-apiserver" "$out/kube-controller-manager" "$bin/"
rmdir "$out"
