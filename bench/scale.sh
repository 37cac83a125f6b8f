#!/usr/bin/env bash
# Benchmark: how smelt's cost grows with the number of entries. For trees of SIZES small
# files (default 30000 300000 1000000; made here: 100 files of 8-200 bytes a directory),
# `smelt build` of an initramfs from the tree (base-rootfs from a directory) against
# `find | sort | cpio -o -H newc | zstd -T0`: wall seconds and peak memory of each,
# smelt's ratios, and the size of report.json (and of the manifest, written only with
# --manifest, timed apart). Best of RUNS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in cpio zstd /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: needs $tool (apt-get install cpio zstd time)" >&2; exit 1; }
done
runs=${RUNS:-3}
sizes=${SIZES:-30000 300000 1000000}
work=$(mktemp -d /var/tmp/smelt-scale.XXXXXX)
trap 'rm -rf "$work"' EXIT
cargo build --release -q
smelt="$PWD/target/release/smelt"
printf '[output.initramfs]\nmax = "100GiB"\nmax-unpacked = "100GiB"\n' > "$work/size-budget.toml"

# make_tree DIR N: N small files, 100 a directory, 10 directories a parent.
make_tree() {
  python3 - "$1" "$2" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i // 1000:04d}", f"e{i // 100 % 10}")
    if i % 100 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i % 100:02d}.txt"), "w") as f:
        f.write(f"file {i}\n" * (1 + i % 20))
PY
}

# best NAME CMD...: runs CMD RUNS times after a sync; prints the fastest run's wall
# seconds and that run's peak RSS in MiB.
best() {
  local name=$1; shift
  : > "$work/times"
  for _ in $(seq "$runs"); do
    rm -rf "$work/out" "$work/pipe.cpio.zst"
    sync
    /usr/bin/time -f '%e %M' -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    cat "$work/t" >> "$work/times"
  done
  sort -n "$work/times" | head -1 | awk '{ printf "%s %d\n", $1, $2 / 1024 }'
}

printf '%9s %9s %9s %9s %9s %11s %11s %12s %13s\n' entries "smelt s" "pipe s" "smelt MiB" "pipe MiB" "time ratio" "report KiB" "manifest s" "manifest KiB"
for n in $sizes; do
  tree="$work/tree-$n"
  make_tree "$tree" "$n"
  entries=$(find "$tree" | wc -l)
  printf '[image]\nname = "scale"\nelements = ["base-rootfs"]\n[params.base-rootfs]\nsource = "%s"\n' "$tree" > "$work/image.toml"
  tar -cf /dev/null -C "$tree" .   # warm the page cache for both
  read -r st sm < <(best smelt "$smelt" build "$work/image.toml" -o "$work/out" -q --source-date-epoch 1700000000)
  report=$(stat -c %s "$work/out/report.json")
  read -r pt pm < <(best pipe bash -c "cd '$tree' && find . | LC_ALL=C sort | cpio -o -H newc --reproducible --quiet | zstd -T0 -3 -q > '$work/pipe.cpio.zst'")
  read -r mt _ < <(best manifest "$smelt" build "$work/image.toml" -o "$work/out" -q --source-date-epoch 1700000000 --manifest)
  manifest=$(stat -c %s "$work/out/manifest.jsonl.zst")
  awk -v n="$entries" -v st="$st" -v pt="$pt" -v sm="$sm" -v pm="$pm" -v r="$report" -v mt="$mt" -v m="$manifest" 'BEGIN {
    printf "%9d %9.2f %9.2f %9d %9d %11.2f %11.1f %12.2f %13.0f\n", n, st, pt, sm, pm, st / pt, r / 1024, mt, m / 1024 }'
  rm -rf "$tree"
done
echo "goals: time ratio <= 1.00 at every size, smelt <= 128 MiB at 1M entries, report.json <= 1024 KiB"
