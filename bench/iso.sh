#!/usr/bin/env bash
# Benchmark: `smelt build` of a data ISO (Rock Ridge + Joliet) against
# `xorriso -as mkisofs -R -J` on the same large tree. Prints wall time, peak memory and
# size of each and the speed-up (target: smelt at least 3x faster).
cd "$(dirname "$0")/.."
for tool in xorriso /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: needs $tool (apt-get install xorriso time)" >&2; exit 1; }
done
source bench/common.sh
printf '[image]\nname = "big"\nelements = ["big"]\noutputs = ["iso"]\niso-label = "BENCH"\n' > "$work/image.toml"

for _ in $(seq "$runs"); do
  rm -rf "$work/out" "$work/x.iso"
  run smelt "$smelt" build "$work/image.toml" --elements-path "$work/elements" -o "$work/out" -q --source-date-epoch 1700000000
  run xorriso xorriso -as mkisofs -quiet -R -J -V BENCH -o "$work/x.iso" "$root"
done
table smelt="$work/out/big.iso" xorriso="$work/x.iso"
read -r s_t _ < <(best smelt)
read -r x_t _ < <(best xorriso)
awk -v st="$s_t" -v xt="$x_t" 'BEGIN { printf "speed-up xorriso/smelt: %.1fx (target: 3x)\n", xt/st }'
