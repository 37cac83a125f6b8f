# Shared by the benchmarks: a large scratch element built from host directories, and a
# best-of-N timer reporting wall seconds and peak RSS.
#   SOURCES (default: /usr/share /usr/lib/python3) are copied into the element;
#   RUNS (default 5) runs each command, keeping the fastest;
#   COLD=1 (root only) empties the page cache before every run, as after a reboot or on a
#   fresh CI machine: what reading ahead (smelt's io/prefetch.rs) is for.
set -euo pipefail
runs=${RUNS:-5}
sources=${SOURCES:-/usr/share /usr/lib/python3}
work=$(mktemp -d /var/tmp/smelt-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/elements/big/root"
for s in $sources; do
  mkdir -p "$root$(dirname "$s")"
  cp -a "$s" "$root$s"
done
printf 'description = "benchmark tree"\n' > "$work/elements/big/element.toml"
printf '[output.initramfs]\nmax = "100GiB"\nmax-unpacked = "100GiB"\n[output.iso]\nmax = "100GiB"\n' > "$work/size-budget.toml"
cargo build --release -q
smelt="$PWD/target/release/smelt"
echo "tree: $(find "$root" | wc -l) entries, $(( $(du -sb "$root" | cut -f1) / 1048576 )) MiB apparent; best of $runs runs${COLD:+, cold cache}"
tar -cf /dev/null -C "$root" .   # warm the page cache for every contender

# run NAME CMD...: one timed run of CMD, after a `sync`, added to NAME's results. The
# scripts alternate their contenders' runs, so a noisy spell of the machine (writeback,
# a busy neighbour) falls on both rather than on one contender's every run, and remove
# the previous outputs first, so no run pays for freeing the last one's (on this VM,
# replacing a synced 700 MB file moved a run by up to a second).
run() {
  local name=$1; shift
  sync
  if [ -n "${COLD:-}" ]; then
    echo 3 > /proc/sys/vm/drop_caches || { echo "bench: COLD=1 needs root (it writes /proc/sys/vm/drop_caches)" >&2; exit 1; }
  fi
  /usr/bin/time -f '%e %M' -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  cat "$work/t" >> "$work/times.$name"
}

best() { # prints NAME's fastest run: wall seconds and its peak RSS (KiB)
  sort -n "$work/times.$1" | head -1
}

row() { printf '%-10s %10s %12d %14d\n' "$1" "$2" $(( $3 / 1024 )) "$4"; }

# table NAME=OUTPUT...: each contender's best run and the size of what it wrote.
table() {
  printf '%-10s %10s %12s %14s\n' "" "wall s" "peak MiB" "output bytes"
  local spec t m
  for spec; do
    read -r t m < <(best "${spec%%=*}")
    row "${spec%%=*}" "$t" "$m" "$(stat -c %s "${spec#*=}")"
  done
}
