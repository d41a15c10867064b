#!/usr/bin/env bash
# Builds the Kubernetes binaries the tests, the local mode and the benchmarks run,
# from the Go module proxy only (no release downloads), into a per-machine cache:
#   ~/.cache/harouter/<tool>-<version>/bin/<binary>
# A tool whose binaries are all present is skipped, so a second run costs nothing.
# Usage: build-binaries.sh [kubernetes|etcd|helm|promtool ...]   (default: all four)
set -euo pipefail

KUBERNETES_VERSION=v1.36.3
ETCD_VERSION=v3.6.14
HELM_VERSION=v3.21.4
PROMTOOL_VERSION=v0.316.0   # Prometheus 3.x modules are versioned v0.3xx.y

here=$(cd "$(dirname "$0")" && pwd)
cache=${HAROUTER_CACHE:-$HOME/.cache/harouter}
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
command -v go >/dev/null || { echo "build-binaries: the Go toolchain (go) is required on PATH" >&2; exit 1; }

mkdir -p "$cache"
exec 9>"$cache/.build.lock"
flock 9

have() { local dir=$1; shift; for b in "$@"; do [ -x "$dir/$b" ] || return 1; done; }

build_kubernetes() {
  local out="$cache/kubernetes-$KUBERNETES_VERSION/bin"
  have "$out" kube-apiserver kube-controller-manager kubectl && return 0
  echo "build-binaries: building kube-apiserver, kube-controller-manager and kubectl $KUBERNETES_VERSION (a few minutes, once per machine)" >&2
  local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "$out.tmp"
  (cd "$here/k8s" && go build -mod=mod -trimpath -ldflags "$ld" -o "$out.tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl)
  rm -rf "$out" && mv "$out.tmp" "$out"
}

build_etcd() {
  local out="$cache/etcd-$ETCD_VERSION/bin"
  have "$out" etcd && return 0
  echo "build-binaries: building etcd $ETCD_VERSION" >&2
  mkdir -p "$out.tmp"
  (cd "$here/etcd" && go build -mod=mod -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3)
  rm -rf "$out" && mv "$out.tmp" "$out"
}

build_helm() {
  local out="$cache/helm-$HELM_VERSION/bin"
  have "$out" helm && return 0
  echo "build-binaries: building helm $HELM_VERSION" >&2
  mkdir -p "$out.tmp"
  GOBIN="$out.tmp" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  rm -rf "$out" && mv "$out.tmp" "$out"
}

build_promtool() {
  local out="$cache/promtool-$PROMTOOL_VERSION/bin"
  have "$out" promtool && return 0
  echo "build-binaries: building promtool $PROMTOOL_VERSION (for the alert-rule tests)" >&2
  mkdir -p "$out.tmp"
  GOBIN="$out.tmp" go install -trimpath -ldflags "-s -w" "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"
  rm -rf "$out" && mv "$out.tmp" "$out"
}

tools=("$@"); [ ${#tools[@]} -gt 0 ] || tools=(etcd kubernetes helm promtool)
for t in "${tools[@]}"; do
  case $t in
    kubernetes|etcd|helm|promtool) "build_$t" ;;
    *) echo "build-binaries: unknown tool $t (kubernetes, etcd, helm, promtool)" >&2; exit 2 ;;
  esac
done
