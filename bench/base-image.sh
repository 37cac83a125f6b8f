#!/usr/bin/env bash
# Benchmark: taking a 2 GiB disk image's root (qcow2, ext4, about 1.1 GiB of files: an
# mmdebstrap minbase root, 20000 small files and 500 of 2 MiB) into a build, smelt
# against what users do today:
#   - diskimage-builder's way, as root: qemu-nbd (or, where the kernel has no nbd module,
#     qemu-img convert to raw and a loop device) + mount + cp -a into a directory;
#   - libguestfs's virt-tar-out (rootless, the tool smelt drives, as one command).
# smelt: a cold build (the image read through libguestfs into the cache, then a `dir`
# output), and a warm one (the cached root). Floor: cp -a of the same files from a
# directory (no image to read). Prints seconds and ratios to smelt cold.
# Needs root (mmdebstrap, mount), libguestfs-tools, qemu-utils.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/base-image.sh needs root (mmdebstrap, mount)" >&2; exit 1; }
for c in guestfish virt-tar-out qemu-img mmdebstrap; do
  command -v $c >/dev/null || { echo "bench/base-image.sh needs $c (apt-get install libguestfs-tools qemu-utils mmdebstrap)" >&2; exit 1; }
done
# A /dev/kvm without vmx/svm (a nested guest) hangs QEMU: libguestfs under TCG there,
# as smelt itself chooses.
grep -qw -e vmx -e svm /proc/cpuinfo || export LIBGUESTFS_BACKEND_SETTINGS=force_tcg
cargo build --release -q
smelt="$PWD/target/release/smelt"
work=$(mktemp -d /var/tmp/smelt-base-image.XXXXXX)
nbd=
cleanup() {
  umount "$work/mnt" 2>/dev/null || true
  [ -n "$nbd" ] && qemu-nbd -d "$nbd" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
timed() { # NAME CMD...: runs CMD, keeps its wall seconds in $work/NAME
  /usr/bin/time -f '%e' -o "$work/$1" "${@:2}" >/dev/null 2>"$work/$1.err" || { cat "$work/$1.err" >&2; exit 1; }
}

mmdebstrap --quiet --mode=root --variant=minbase bookworm "$work/root" http://deb.debian.org/debian
/usr/bin/python3 - "$work/root/srv/data" <<'EOF'
import os, sys
top = sys.argv[1]
for i in range(200):
    d = os.path.join(top, "small", f"{i:03}")
    os.makedirs(d)
    for j in range(100):
        with open(os.path.join(d, f"{j:03}"), "wb") as f:
            f.write(os.urandom(4096))
os.makedirs(os.path.join(top, "large"))
for i in range(500):
    with open(os.path.join(top, "large", f"{i:03}"), "wb") as f:
        f.write(os.urandom(2 << 20))
EOF
mke2fs -q -t ext4 -d "$work/root" "$work/disk.raw" 2G
qemu-img convert -O qcow2 "$work/disk.raw" "$work/disk.qcow2"
rm "$work/disk.raw"
files=$(du -sm "$work/root" | cut -f1)

mkdir -p "$work/project" "$work/mnt"
printf '[image]\nname = "img"\nelements = ["base-image"]\noutputs = ["dir"]\n[params.base-image]\nsource = "%s"\n' \
  "$work/disk.qcow2" > "$work/project/image.toml"
timed cold env SMELT_CACHE_DIR="$work/cache" "$smelt" build "$work/project/image.toml" -o "$work/out-cold" -q
timed warm env SMELT_CACHE_DIR="$work/cache" "$smelt" build "$work/project/image.toml" -o "$work/out-warm" -q

if modprobe nbd max_part=8 2>/dev/null && [ -e /dev/nbd0 ]; then
  way="qemu-nbd + mount + cp -a"
  nbd=/dev/nbd0
  timed mounted bash -c "qemu-nbd --read-only -c $nbd $work/disk.qcow2 && sleep 0.5 && mount -o ro $nbd $work/mnt && \
    cp -a $work/mnt/. $work/copy && umount $work/mnt && qemu-nbd -d $nbd"
  nbd=
else
  way="qemu-img convert + loop mount + cp -a (no nbd module)"
  timed mounted bash -c "qemu-img convert -O raw $work/disk.qcow2 $work/disk.raw && mount -o loop,ro $work/disk.raw $work/mnt && \
    cp -a $work/mnt/. $work/copy && umount $work/mnt && rm $work/disk.raw"
fi
rm -rf "$work/copy"
timed guestfs env LIBGUESTFS_BACKEND=direct virt-tar-out -a "$work/disk.qcow2" / "$work/virt.tar"
timed floor cp -a "$work/root/." "$work/floor-copy"

printf 'disk image: 2 GiB qcow2 (%s MiB), ext4 holding %s MiB of files\n' "$(du -m "$work/disk.qcow2" | cut -f1)" "$files"
printf '%-60s %8s %7s\n' "" "seconds" "ratio"
row() { awk -v n="$1" -v s="$(cat "$work/$2")" -v c="$(cat "$work/cold")" 'BEGIN { printf "%-60s %8.1f %7.2f\n", n, s, s / c }'; }
row "smelt, cold (libguestfs appliance, then the dir output)" cold
row "smelt, warm (the cached root, the dir output)" warm
row "$way (root)" mounted
row "virt-tar-out (libguestfs, rootless)" guestfs
row "floor: cp -a of the same files from a directory" floor
echo "ratio: seconds / smelt cold"
