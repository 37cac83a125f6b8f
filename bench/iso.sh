#!/usr/bin/env bash
# Benchmark: `smelt build` of a data ISO (Rock Ridge + Joliet) against genisoimage (the
# field report's way: -R -J -joliet-long) and `xorriso -as mkisofs -R -J` on the same
# large tree, and the floor: reading every file of the tree (cat) and writing an image
# of the ISO's size (head -c from /dev/zero). Prints wall time, peak memory and size of
# each, smelt's ratios (targets: <= 0.5x genisoimage, <= 1.2x the floor), and what
# zisofs (iso-compression = "zisofs") saves on the same tree, and its time.
cd "$(dirname "$0")/.."
for tool in xorriso genisoimage /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: needs $tool (apt-get install xorriso genisoimage time)" >&2; exit 1; }
done
source bench/common.sh
printf '[image]\nname = "big"\nelements = ["big"]\noutputs = ["iso"]\niso-label = "BENCH"\n' > "$work/image.toml"
sed 's/^iso-label = "BENCH"$/iso-label = "BENCH"\niso-compression = "zisofs"/' "$work/image.toml" > "$work/zisofs.toml"
export SMELT_CACHE_DIR="$work/cache"
# A first zisofs build fills the cache of compressed files; the timed ones are warm.
"$smelt" build "$work/zisofs.toml" --elements-path "$work/elements" -o "$work/z" -q --source-date-epoch 1700000000

for _ in $(seq "$runs"); do
  rm -rf "$work/out" "$work/x.iso" "$work/g.iso" "$work/floor.img" "$work/z"
  run smelt "$smelt" build "$work/image.toml" --elements-path "$work/elements" -o "$work/out" -q --source-date-epoch 1700000000
  run genisoimage genisoimage -quiet -R -J -joliet-long -V BENCH -o "$work/g.iso" "$root"
  run xorriso xorriso -as mkisofs -quiet -R -J -V BENCH -o "$work/x.iso" "$root"
  size=$(stat -c %s "$work/out/big.iso")
  run floor bash -c "find '$root' -type f -print0 | xargs -0 cat > /dev/null && head -c $size /dev/zero > '$work/floor.img'"
  run zisofs "$smelt" build "$work/zisofs.toml" --elements-path "$work/elements" -o "$work/z" -q --source-date-epoch 1700000000
done
table smelt="$work/out/big.iso" genisoimage="$work/g.iso" xorriso="$work/x.iso" floor="$work/floor.img" zisofs="$work/z/big.iso"
read -r s_t _ < <(best smelt)
read -r g_t _ < <(best genisoimage)
read -r x_t _ < <(best xorriso)
read -r f_t _ < <(best floor)
awk -v st="$s_t" -v gt="$g_t" -v xt="$x_t" -v ft="$f_t" -v p="$(stat -c %s "$work/out/big.iso")" -v z="$(stat -c %s "$work/z/big.iso")" 'BEGIN {
  printf "smelt/genisoimage %.2f (target <= 0.5), smelt/floor %.2f (target <= 1.2), xorriso/smelt %.1fx\n", st/gt, st/ft, xt/st
  printf "zisofs: %.1f MiB of %.1f MiB plain (%.0f%% saved)\n", z/1048576, p/1048576, 100 * (1 - z/p) }'
