# Sourced by the build scripts next to it; the caller defines say() (its own prefix).
# Runs a build step with a line every 30 s, so a long build is never a silent wait.
with_progress() {
  local what=$1; shift
  local started=$SECONDS
  ( while sleep 30 >/dev/null 2>&1; do say "still building $what ($(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s so far)"; done ) &
  local ticker=$!
  local status=0
  "$@" || status=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  return $status
}
