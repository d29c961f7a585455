#!/usr/bin/env bash
# Makes this clone ready to run, for `npm start`, `npm test` and .ci/run alike:
#   scripts/setup.sh           npm dependencies (npm ci) when missing or out of date, then `npm run build`
#   scripts/setup.sh --system  first the Debian packages the test suite needs (scripts/system-packages.txt)
# Plain bash and node only: npm runs it before anything is installed. A second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

system=false
for arg in "$@"; do
  case $arg in
    --system) system=true ;;
    *) echo "usage: scripts/setup.sh [--system]" >&2; exit 2 ;;
  esac
done

if $system; then
  mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' scripts/system-packages.txt | grep -v '^$')
  installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null | awk '$2 == "installed" { print $1 }' || true)
  missing=()
  for p in "${packages[@]}"; do
    grep -qx "$p" <<<"$installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "setup: installing the Debian packages the tests need: ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
      echo "setup: the tests need Debian packages that are not installed: ${missing[*]}" >&2
      echo "setup: install them as root on Debian or Ubuntu, then run again:" >&2
      echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
      exit 1
    fi
  fi
fi

# npm ci when node_modules is missing or older than package-lock.json. A checkout rewrites the lock file's
# mtime without changing it, so an older node_modules whose hidden lock file still records every locked
# version counts as current.
npm_current() {
  [ -f node_modules/.package-lock.json ] || return 1
  [ node_modules/.package-lock.json -nt package-lock.json ] && return 0
  node -e '
    const read = (f) => JSON.parse(require("node:fs").readFileSync(f, "utf8")).packages;
    const [locked, present] = [read("package-lock.json"), read("node_modules/.package-lock.json")];
    const stale = Object.entries(locked).filter(([p, e]) => p !== "" && !e.optional && present[p]?.version !== e.version);
    process.exit(stale.length ? 1 : 0);'
}
if ! npm_current; then
  echo "setup: installing the npm dependencies (npm ci)"
  npm ci --no-audit --no-fund
fi

npm run --silent build
