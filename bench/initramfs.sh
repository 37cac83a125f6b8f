#!/usr/bin/env bash
# Benchmark: `smelt build` against the pipeline users would otherwise run,
#   find . | sort | cpio -o -H newc --reproducible | zstd -T0 -LEVEL
# on the same large tree at the same zstd level. Prints wall time, peak memory and
# output size of each, and smelt's ratios to the pipeline (lower is better).
#
# SOURCES (default: /usr/share /usr/lib/python3) are copied into a scratch element;
# LEVEL (default 3) is the zstd level; RUNS (default 3) runs each, best time kept.
set -euo pipefail
cd "$(dirname "$0")/.."
level=${LEVEL:-3}
runs=${RUNS:-3}
sources=${SOURCES:-/usr/share /usr/lib/python3}
for tool in cpio zstd /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: needs $tool (apt-get install cpio zstd time)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/smelt-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/elements/big/root"
for s in $sources; do
  mkdir -p "$root$(dirname "$s")"
  cp -a "$s" "$root$s"
done
printf 'description = "benchmark tree"\n' > "$work/elements/big/element.toml"
printf '[image]\nname = "big"\nelements = ["big"]\ncompression = "zstd"\ncompression-level = %s\n' "$level" > "$work/image.toml"
printf '[output.initramfs]\nmax = "100GiB"\nmax-unpacked = "100GiB"\n' > "$work/size-budget.toml"
cargo build --release -q
smelt="$PWD/target/release/smelt"
files=$(find "$root" | wc -l)
bytes=$(du -sb "$root" | cut -f1)
echo "tree: $files entries, $((bytes / 1048576)) MiB apparent; zstd level $level; best of $runs runs"
tar -cf /dev/null -C "$root" .   # warm the page cache for both

best() { # best wall time and its peak RSS (KiB) over $runs runs of "$@"
  local best_t="" best_m=""
  for _ in $(seq "$runs"); do
    /usr/bin/time -f '%e %M' -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    read -r t m < "$work/t"
    if [ -z "$best_t" ] || awk "BEGIN{exit !($t < $best_t)}"; then best_t=$t; best_m=$m; fi
  done
  echo "$best_t $best_m"
}

read -r s_t s_m < <(best "$smelt" build "$work/image.toml" --elements-path "$work/elements" -o "$work/out" -q --source-date-epoch 1700000000)
s_size=$(stat -c %s "$work/out/big.cpio.zst")
# The pipeline's peak is that of its largest process (GNU time reports the largest child).
read -r p_t p_m < <(best bash -c "cd '$root' && find . | LC_ALL=C sort | cpio -o -H newc --reproducible --quiet | zstd -T0 -$level -q -o '$work/pipe.cpio.zst' -f")
p_size=$(stat -c %s "$work/pipe.cpio.zst")

printf '%-10s %10s %12s %14s\n' "" "wall s" "peak MiB" "output bytes"
printf '%-10s %10s %12d %14d\n' smelt "$s_t" $((s_m / 1024)) "$s_size"
printf '%-10s %10s %12d %14d\n' pipeline "$p_t" $((p_m / 1024)) "$p_size"
awk -v st="$s_t" -v pt="$p_t" -v sm="$s_m" -v pm="$p_m" -v ss="$s_size" -v ps="$p_size" 'BEGIN {
  printf "ratios smelt/pipeline: wall %.2f, peak memory %.2f, size %.4f\n", st/pt, sm/pm, ss/ps }'
