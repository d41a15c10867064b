#!/usr/bin/env bash
# Builds the binaries the tests, the local mode and the benchmarks run, from the Go module proxy
# only (no release downloads), into a per-machine cache:
#   ~/.cache/harouter/<tool>-<version>/bin/<binary>
# Next to the binaries, bin/.recipe records how they were built (version, module files, link
# flags, packages). A tool whose binaries are present and whose recorded recipe is today's is
# skipped, so a second run costs nothing; a changed recipe rebuilds that tool only.
# The node tier and `npm run local -- --node` also need a real node's binaries: kubelet, kube-proxy
# and kube-scheduler (kubernetes-node, from the same wrapper module as kube-apiserver), containerd
# with ctr and its runc shim (containerd), and the CNI plugins (cni-plugins); runc comes from Debian.
# Usage: build-binaries.sh [kubernetes|etcd|helm|promtool|prometheus|kubernetes-node|containerd|cni-plugins ...]
#        (default: all eight)
set -euo pipefail

KUBERNETES_VERSION=v1.36.3
ETCD_VERSION=v3.6.14
HELM_VERSION=v3.21.4
# Helm's Makefile links the Kubernetes version of its client-go (v0.36.x in helm v3.21.4's go.mod) as
# its default: without it helm assumes Kubernetes 1.20 and refuses charts needing a newer one.
HELM_KUBE_MAJOR=1
HELM_KUBE_MINOR=36
PROMETHEUS_VERSION=v0.316.0   # Prometheus 3.16.0: Prometheus 3.x modules are versioned v0.3xx.y
PROMTOOL_VERSION=$PROMETHEUS_VERSION
CONTAINERD_VERSION=v2.4.2
CNI_PLUGINS_VERSION=v1.10.0

here=$(cd "$(dirname "$0")" && pwd)
cache=${HAROUTER_CACHE:-$HOME/.cache/harouter}
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0

# Each tool: its version, its binaries and its recipe (everything that decides the binaries).
version_of() { case $1 in kubernetes) echo "$KUBERNETES_VERSION" ;; etcd) echo "$ETCD_VERSION" ;;
  helm) echo "$HELM_VERSION" ;; promtool) echo "$PROMTOOL_VERSION" ;; prometheus) echo "$PROMETHEUS_VERSION" ;;
  kubernetes-node) echo "$KUBERNETES_VERSION" ;; containerd) echo "$CONTAINERD_VERSION" ;;
  cni-plugins) echo "$CNI_PLUGINS_VERSION" ;; esac; }
binaries_of() { case $1 in kubernetes) echo kube-apiserver kube-controller-manager kubectl ;;
  kubernetes-node) echo kubelet kube-proxy kube-scheduler ;; containerd) echo containerd ctr containerd-shim-runc-v2 ;;
  cni-plugins) echo bridge host-local loopback portmap ;; *) echo "$1" ;; esac; }
out_of() { echo "$cache/$1-$(version_of "$1")/bin"; }

kubernetes_ldflags() {
  local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$ld"
}
helm_ldflags() {
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ld="$ld -X $p.k8sVersionMajor=$HELM_KUBE_MAJOR -X $p.k8sVersionMinor=$HELM_KUBE_MINOR"
  done
  echo "$ld"
}
containerd_ldflags() {
  local p=github.com/containerd/containerd/v2/version
  echo "-s -w -X $p.Version=$CONTAINERD_VERSION -X $p.Revision=$CONTAINERD_VERSION"
}
prometheus_ldflags() {
  echo "-s -w -X github.com/prometheus/common/version.Version=3.${PROMETHEUS_VERSION#v0.3}"
}

# Sets `words` to the command that builds tool $1 into directory $2 (run in module_dir $1).
command_of() {
  case $1 in
    kubernetes) words=(go build -mod=mod -trimpath -ldflags "$(kubernetes_ldflags)" -o "$2/" k8s.io/kubernetes/cmd/kube-apiserver
      k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl) ;;
    etcd) words=(go build -mod=mod -trimpath -ldflags "-s -w" -o "$2/etcd" go.etcd.io/etcd/server/v3) ;;
    helm) words=(env "GOBIN=$2" go install -trimpath -ldflags "$(helm_ldflags)" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") ;;
    promtool) words=(env "GOBIN=$2" go install -trimpath -ldflags "-s -w"
      "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION") ;;
    prometheus) words=(env "GOBIN=$2" go install -trimpath -ldflags "$(prometheus_ldflags)"
      "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION") ;;
    kubernetes-node) words=(go build -mod=mod -trimpath -ldflags "$(kubernetes_ldflags)" -o "$2/"
      k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kube-scheduler) ;;
    # The graph drivers that need cgo or kernel headers are left out; containerd uses overlayfs here.
    containerd) local m=github.com/containerd/containerd/v2/cmd
      words=(env "GOBIN=$2" go install -trimpath -tags "no_btrfs no_devmapper no_zfs" -ldflags "$(containerd_ldflags)"
        "$m/containerd@$CONTAINERD_VERSION" "$m/ctr@$CONTAINERD_VERSION" "$m/containerd-shim-runc-v2@$CONTAINERD_VERSION") ;;
    cni-plugins) local m=github.com/containernetworking/plugins
      words=(env "GOBIN=$2" go install -trimpath
        -ldflags "-s -w -X $m/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION"
        "$m/plugins/main/bridge@$CNI_PLUGINS_VERSION" "$m/plugins/ipam/host-local@$CNI_PLUGINS_VERSION"
        "$m/plugins/main/loopback@$CNI_PLUGINS_VERSION" "$m/plugins/meta/portmap@$CNI_PLUGINS_VERSION") ;;
  esac
}
# kubernetes and etcd build from the wrapper modules next to this script (their go.mod pins every dependency).
module_dir() { case $1 in kubernetes|kubernetes-node) echo "$here/k8s" ;; etcd) echo "$here/etcd" ;; *) echo "$here" ;; esac; }

# The recipe: the build command (output directory left out) and the wrapper module's files.
recipe() {
  local words; command_of "$1" OUT
  printf '%q ' "${words[@]}"; echo
  case $1 in kubernetes|kubernetes-node|etcd) (cd "$(module_dir "$1")" && sha256sum go.mod go.sum) ;; esac
}
recipe_sha() { recipe "$1" | sha256sum | cut -d' ' -f1; }

# Caches built before recipes were recorded have no bin/.recipe. These are the sha256 of the recipes
# that script built with: a tool whose recipe is still one of them is adopted (its recipe recorded),
# any other unrecorded cache is rebuilt (helm: that script linked no Kubernetes version).
UNRECORDED_RECIPES="
kubernetes b56b6cf3fb6808cc1a215b5e9f761e9c90e421aa0428f71af567d22fcbf06828
etcd d70f138f7ea6b828f94088d0a2aef5dfcba601580e0787f7f3625b9dac305365
promtool 1d5380883d3060beccdc144ff281c0864fc4896771ef30b71d97697b7cf7edf3
"

have() { local dir=$1; shift; for b in "$@"; do [ -x "$dir/$b" ] || return 1; done; }
# shellcheck disable=SC2046
current() { local out; out=$(out_of "$1"); have "$out" $(binaries_of "$1") && cmp -s "$out/.recipe" <(recipe "$1"); }
# shellcheck disable=SC2046
adoptable() { local out; out=$(out_of "$1"); have "$out" $(binaries_of "$1") && [ ! -e "$out/.recipe" ] &&
  grep -qx "$1 $(recipe_sha "$1")" <<<"$UNRECORDED_RECIPES"; }

# shellcheck source=test/tools/progress.sh
. "$here/progress.sh"
say() { echo "build-binaries: $*" >&2; }

declare -A typical=([kubernetes]="5 to 20 min" [etcd]="2 to 4 min" [helm]="1 to 3 min" [promtool]="3 to 8 min" [prometheus]="1 to 8 min"
  [kubernetes-node]="3 to 15 min" [containerd]="3 to 10 min" [cni-plugins]="1 min")

ensure() {
  local tool=$1 out; out=$(out_of "$tool")
  current "$tool" && return 0
  if adoptable "$tool"; then
    recipe "$tool" >"$out/.recipe"
    say "$tool $(version_of "$tool"): cached before build recipes were recorded, built as today: recipe recorded"
    return 0
  fi
  command -v go >/dev/null || { say "the Go toolchain (go) is required on PATH to build $tool"; exit 1; }
  if [ -d "$out" ]; then say "$tool $(version_of "$tool"): its build recipe changed: rebuilding"; fi
  say "building $tool $(version_of "$tool") from the Go module proxy into $out (once per machine; typically ${typical[$tool]})"
  local started=$SECONDS
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  local words; command_of "$tool" "$out.tmp"
  local dir; dir=$(module_dir "$tool")
  # kubernetes-node builds in a scratch copy of the wrapper module: its go.sum lacks the checksums of
  # the kubelet's and kube-proxy's own dependencies, which -mod=mod adds to the copy only. The
  # module's files are the kubernetes tool's recipe too: changing them would rebuild kube-apiserver.
  if [ "$tool" = kubernetes-node ]; then
    dir="$out.module" && rm -rf "$dir" && mkdir -p "$dir" && cp "$here/k8s/go.mod" "$here/k8s/go.sum" "$dir/"
  fi
  (cd "$dir" && with_progress "$tool" "${words[@]}")
  [ "$tool" != kubernetes-node ] || rm -rf "$dir"
  recipe "$tool" >"$out.tmp/.recipe"
  rm -rf "$out" && mv "$out.tmp" "$out"
  say "built $tool in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
}

tools=("$@"); [ ${#tools[@]} -gt 0 ] || tools=(etcd kubernetes helm promtool prometheus kubernetes-node containerd cni-plugins)
for t in "${tools[@]}"; do
  case $t in
    kubernetes|etcd|helm|promtool|prometheus|kubernetes-node|containerd|cni-plugins) ;;
    *) say "unknown tool $t (kubernetes, etcd, helm, promtool, prometheus, kubernetes-node, containerd, cni-plugins)"; exit 2 ;;
  esac
done

# Up to date: nothing to wait for (a finished build's binaries and recipe are moved in together).
stale=()
for t in "${tools[@]}"; do current "$t" || stale+=("$t"); done
[ ${#stale[@]} -gt 0 ] || exit 0

mkdir -p "$cache"
exec 9>"$cache/.build.lock"
if ! flock -n 9; then
  say "another build holds $cache/.build.lock: waiting for it to finish"
  flock 9
fi
for t in "${stale[@]}"; do ensure "$t"; done
