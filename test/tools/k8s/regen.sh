#!/usr/bin/env bash
# Points this wrapper module at another Kubernetes release: requires k8s.io/kubernetes@VERSION
# and pins every k8s.io/<staging> module that release replaces with ./staging/... to its
# published tag (v0.<minor>.<patch>), then tidies go.mod and go.sum.
# Usage: test/tools/k8s/regen.sh v1.36.3   (then update the versions in build-binaries.sh
# and src/local/controlplane/binaries.ts)
set -euo pipefail
version=${1:?usage: regen.sh vMAJOR.MINOR.PATCH}
staging_tag=v0.${version#v1.}
cd "$(dirname "$0")"
export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod
upstream_mod=$(cd /tmp && go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
for module in $(awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$upstream_mod"); do
  go mod edit -replace="$module=$module@$staging_tag"
done
go mod edit -require="k8s.io/kubernetes@$version"
go mod tidy
