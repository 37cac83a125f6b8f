#!/usr/bin/env bash
# Benchmark: 12 per-node images (`smelt build --per-node`, the shared part built once,
# each node's part stamped on) against one full build of the same image. Target: all
# 12 in under twice the time of one. OUTPUT=iso makes bootable ISOs (the host's kernel)
# instead of initramfs files.
cd "$(dirname "$0")/.."
SOURCES=${SOURCES:-/usr/lib/python3} source bench/common.sh
{
  printf '[client]\nname = "bench"\ndomain = "bench.example"\ndns = ["10.10.0.53"]\n'
  for i in $(seq 1 12); do
    h=$(printf '%02x' "$i")
    printf '\n[[nodes]]\nname = "node%02d"\n' "$i"
    printf 'links = [\n  { name = "fast0", mac = "52:54:00:00:%s:01" },\n  { name = "fast1", mac = "52:54:00:00:%s:02" },\n]\n' "$h" "$h"
    printf 'bonds = [{ name = "bond0", members = ["fast0", "fast1"], mode = "802.3ad", miimon = 100 }]\n'
    printf 'vlans = [{ name = "front", link = "bond0", id = 100, addresses = ["10.10.0.%d/24"], gateway = "10.10.0.1" }]\n' $((10 + i))
  done
} > "$work/client.toml"
output=${OUTPUT:-initramfs}
case "$output" in
  initramfs) extra='' ; suffix=cpio.zst ;;
  iso) extra='outputs = ["iso"]\nkernel = "auto"\n' ; suffix=iso ;;
  *) echo "bench: OUTPUT is initramfs or iso" >&2; exit 1 ;;
esac
printf "[image]\nname = \"fleet\"\nelements = [\"base-busybox\", \"init\", \"network\", \"big\"]\n$extra[params.network]\nrenderers = [\"networkd\", \"nm-keyfile\", \"netplan\"]\n" > "$work/image.toml"

for _ in $(seq "$runs"); do
  rm -rf "$work/one" "$work/all"
  run one "$smelt" build "$work/image.toml" --client "$work/client.toml" --elements-path "$work/elements" -o "$work/one" -q --source-date-epoch 1700000000
  run all "$smelt" build "$work/image.toml" --client "$work/client.toml" --elements-path "$work/elements" -o "$work/all" -q --source-date-epoch 1700000000 --per-node
done
read -r one_t one_m < <(best one)
read -r all_t all_m < <(best all)
echo "one $output: $(stat -c %s "$work/one/fleet.$suffix") bytes; per node: $(ls "$work/all"/*."$suffix" | wc -l) of $(stat -c %s "$work/all/fleet-node01.$suffix") bytes"
printf '%-22s %10s %12s\n' "" "wall s" "peak MiB"
printf '%-22s %10s %12d\n' "one full build" "$one_t" $((one_m / 1024))
printf '%-22s %10s %12d\n' "12 per-node images" "$all_t" $((all_m / 1024))
awk -v a="$all_t" -v o="$one_t" 'BEGIN { printf "ratio 12 per-node / one build: %.2f (target: under 2)\n", a/o }'
