#!/usr/bin/env bash
# Benchmark: examples/ipa's inputs carried two ways. A shared cache in an OCI registry
# (Debian's docker-registry on 127.0.0.1): runner A builds cold from the mirrors and
# pushes; runner B, with an empty cache in a network namespace where only the registry
# runs, builds the same image from it. A bundle: its size and the time to make it, and a
# rebuild from it with no network. Ratios: runner B / runner A (goal <= 0.5), and each
# against the floor, a warm --offline build that fetches nothing at all.
# Needs root (the cold bootstrap, network namespaces) and docker-registry.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v docker-registry >/dev/null || { echo "bench/bundle.sh needs docker-registry: apt-get install docker-registry" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench/bundle.sh needs root (mmdebstrap, unshare -n)" >&2; exit 1; }
cargo build --release -q
smelt="$PWD/target/release/smelt"
work=$(mktemp -d /var/tmp/smelt-bundle.XXXXXX)
registry_pid=
cleanup() { [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cp -r examples/ipa/. "$work/project"
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
  "$work/registry" "$port" > "$work/registry.yml"
start_registry="docker-registry serve $work/registry.yml >>$work/registry.log 2>&1 & registry=\$!; \
  for i in \$(seq 100); do curl -sf http://127.0.0.1:$port/v2/ >/dev/null && break; sleep 0.1; done"
export SOURCE_DATE_EPOCH=1700000000
build="$smelt build $work/project/image.toml --elements-path $work/project/elements -q"
timed() { # NAME CMD...: runs CMD, keeps its wall seconds in $work/NAME
  /usr/bin/time -f '%e' -o "$work/$1" "${@:2}" >/dev/null 2>"$work/$1.err" || { cat "$work/$1.err" >&2; exit 1; }
}

bash -c "$start_registry; echo \$registry > $work/registry.pid"
registry_pid=$(cat "$work/registry.pid")
timed a env SMELT_CACHE_DIR="$work/cache-a" SMELT_CACHE="oci://127.0.0.1:$port/smelt-cache" $build -o "$work/out-a"
timed bundle env SMELT_CACHE_DIR="$work/cache-a" $smelt bundle "$work/project/image.toml" --elements-path "$work/project/elements" \
  --lock "$work/out-a/smelt.lock" -o "$work/ipa-bundle.tar"
kill "$registry_pid"; registry_pid=
sleep 0.5
timed b unshare -n bash -c "ip link set lo up; $start_registry; trap 'kill \$registry' EXIT; \
  SMELT_CACHE_DIR=$work/cache-b SMELT_CACHE=oci://127.0.0.1:$port/smelt-cache $build -o $work/out-b"
mkdir -p "$work/elsewhere" && cp "$work/ipa-bundle.tar" "$work/elsewhere/"
timed from bash -c "cd $work/elsewhere && SMELT_CACHE_DIR=$work/elsewhere/cache unshare -n $smelt build --from ipa-bundle.tar -o out -q"
timed floor env SMELT_CACHE_DIR="$work/cache-b" unshare -n $build --offline -o "$work/out-floor"

for out in out-b elsewhere/out out-floor; do
  cmp -s "$work/out-a/ipa.tar" "$work/$out/ipa.tar" || { echo "bench: $out/ipa.tar differs from runner A's" >&2; exit 1; }
done
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
inputs=$(/usr/bin/python3 -c "import json,sys; l=json.load(open(sys.argv[1])); print(len(l['inputs']), sum(i['size'] for i in l['inputs']))" "$work/out-a/smelt.lock")
printf '%-58s %8s\n' "" "seconds"
printf '%-58s %8s\n' "runner A: cold, from the mirrors, then a push" "$(cat "$work/a")"
printf '%-58s %8s\n' "runner B: cold, from the registry only (no other network)" "$(cat "$work/b")"
printf '%-58s %8s\n' "smelt build --from the bundle (no network, empty cache)" "$(cat "$work/from")"
printf '%-58s %8s\n' "floor: warm --offline build, nothing fetched" "$(cat "$work/floor")"
printf '%-58s %8s\n' "smelt bundle" "$(cat "$work/bundle")"
echo "bundle: $(mib "$(stat -c %s "$work/ipa-bundle.tar")") MiB for ${inputs% *} inputs of $(mib "${inputs#* }") MiB; registry: $(du -sm "$work/registry" | cut -f1) MiB"
awk -v a="$(cat "$work/a")" -v b="$(cat "$work/b")" -v f="$(cat "$work/from")" -v fl="$(cat "$work/floor")" 'BEGIN {
  printf "ratios: runner B / runner A %.2f (goal <= 0.5); runner B / floor %.2f; from the bundle / floor %.2f\n", b / a, b / fl, f / fl }'
echo "every output is the same bytes as runner A's"
