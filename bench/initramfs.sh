#!/usr/bin/env bash
# Benchmark: `smelt build` of an initramfs against the pipeline users would otherwise
# run, `find . | sort | cpio -o -H newc --reproducible | zstd -T0 -LEVEL`, on the same
# large tree at the same level (LEVEL, default 3). COMPRESSION=gzip compares with
# `... | gzip -LEVEL` instead (LEVEL default 9, smelt's default for gzip; pigz when
# installed). Prints wall time, peak memory and output size of each, and smelt's ratios
# to the pipeline (lower is better).
cd "$(dirname "$0")/.."
for tool in cpio zstd /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: needs $tool (apt-get install cpio zstd time)" >&2; exit 1; }
done
source bench/common.sh
compression=${COMPRESSION:-zstd}
case "$compression" in
  zstd) level=${LEVEL:-3}; suffix=zst; packer="zstd -T0 -$level -q" ;;
  gzip) level=${LEVEL:-9}; suffix=gz; packer="$(command -v pigz || echo gzip) -$level -n" ;;
  *) echo "bench: COMPRESSION is zstd or gzip" >&2; exit 1 ;;
esac
printf '[image]\nname = "big"\nelements = ["big"]\ncompression = "%s"\ncompression-level = %s\n' "$compression" "$level" > "$work/image.toml"
echo "$compression level $level (pipeline: ${packer%% *})"

# The pipeline's peak is that of its largest process (GNU time reports the largest child).
for _ in $(seq "$runs"); do
  rm -rf "$work/out" "$work/pipe.cpio.$suffix"
  run smelt "$smelt" build "$work/image.toml" --elements-path "$work/elements" -o "$work/out" -q --source-date-epoch 1700000000
  run pipeline bash -c "cd '$root' && find . | LC_ALL=C sort | cpio -o -H newc --reproducible --quiet | $packer > '$work/pipe.cpio.$suffix'"
done
table smelt="$work/out/big.cpio.$suffix" pipeline="$work/pipe.cpio.$suffix"
read -r s_t s_m < <(best smelt)
read -r p_t p_m < <(best pipeline)
s_size=$(stat -c %s "$work/out/big.cpio.$suffix")
p_size=$(stat -c %s "$work/pipe.cpio.$suffix")
awk -v st="$s_t" -v pt="$p_t" -v sm="$s_m" -v pm="$p_m" -v ss="$s_size" -v ps="$p_size" 'BEGIN {
  printf "ratios smelt/pipeline: wall %.2f, peak memory %.2f, size %.4f\n", st/pt, sm/pm, ss/ps }'
