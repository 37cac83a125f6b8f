# Shared by the benchmarks: a large scratch element built from host directories, and a
# best-of-N timer reporting wall seconds and peak RSS (each run starts after a `sync`).
#   SOURCES (default: /usr/share /usr/lib/python3) are copied into the element;
#   RUNS (default 5) runs each command, keeping the fastest.
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
echo "tree: $(find "$root" | wc -l) entries, $(( $(du -sb "$root" | cut -f1) / 1048576 )) MiB apparent; best of $runs runs"
tar -cf /dev/null -C "$root" .   # warm the page cache for every contender

best() { # prints the best wall time and its peak RSS (KiB) over $runs runs of "$@"
  local best_t="" best_m="" t m
  for _ in $(seq "$runs"); do
    sync   # start each run with no writeback pending from the copy or the run before
    /usr/bin/time -f '%e %M' -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    read -r t m < "$work/t"
    if [ -z "$best_t" ] || awk "BEGIN{exit !($t < $best_t)}"; then best_t=$t; best_m=$m; fi
  done
  echo "$best_t $best_m"
}

row() { printf '%-10s %10s %12d %14d\n' "$1" "$2" $(( $3 / 1024 )) "$4"; }
