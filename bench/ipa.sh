#!/usr/bin/env bash
# Benchmark: the Ironic deploy ramdisk of examples/ipa (smelt's own elements,
# ironic-python-agent 13.0.0 from PyPI) against ironic-python-agent-builder's
# `-r bookworm debian-minimal` (DIB 3.43.0 + IPA-builder 7.4.0), and IPA-builder's own
# elements built by smelt (cold cache): compressed and unpacked
# size, entries, the largest contributors, cold and warm build time, and an --offline
# rebuild. The IPA-builder row is rebuilt here when `ironic-python-agent-builder` is on
# PATH, else the figures measured on this machine (2026-12) are printed, marked so.
# Needs root (the first bootstrap). Caches go to ~/.cache/smelt-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v jq >/dev/null || { echo "bench/ipa.sh reads report.json with jq: apt-get install jq" >&2; exit 1; }
cache=${SMELT_BENCH_CACHE:-$HOME/.cache/smelt-bench}/ipa
mkdir -p "$cache"
cargo build --release -q
smelt="$PWD/target/release/smelt"
work=$(mktemp -d /var/tmp/smelt-ipa.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r examples/ipa/. "$work"

build() { # cache dir, output dir, extra args: prints wall seconds
  SMELT_CACHE_DIR="$1" /usr/bin/time -f '%e' -o "$work/t" "$smelt" build "$work/image.toml" \
    --elements-path "$work/elements" -o "$work/$2" -q --source-date-epoch 1700000000 "${@:3}" 2>/dev/null
  cat "$work/t"
}
cold=$(build "$work/cold-cache" cold)         # an empty cache: mmdebstrap, apt, pip
build "$cache" warm >/dev/null                # fills the kept cache once
warm=$(build "$cache" warm)
offline=$(unshare -n true 2>/dev/null && SMELT_CACHE_DIR="$cache" /usr/bin/time -f '%e' -o "$work/t" \
  unshare -n "$smelt" build "$work/image.toml" --elements-path "$work/elements" -o "$work/offline" -q \
  --offline --source-date-epoch 1700000000 2>/dev/null && cat "$work/t" || echo "-")

tar -xf "$work/warm/ipa.tar" -C "$work/warm"
initrd="$work/warm/ipa.initramfs"
compressed=$(stat -c %s "$initrd")
unpacked=$(jq '.tree.apparent_bytes' "$work/warm/report.json")
entries=$(jq '.tree.files + .tree.dirs + .tree.symlinks' "$work/warm/report.json")
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }

printf '%-34s %12s %12s %9s %9s %9s %10s\n' "" "initrd MiB" "unpacked" "entries" "cold s" "warm s" "offline s"
printf '%-34s %12s %12s %9s %9s %9s %10s\n' "smelt examples/ipa (zstd)" "$(mib "$compressed")" \
  "$(mib "$unpacked")" "$entries" "$cold" "$warm" "$offline"
# The same elements IPA-builder uses, built by smelt: its wheel's elements and DIB's, IPA
# and glean from their sdists as git repositories, constraints from the native build.
wheels="$cache/wheels"
[ -d "$wheels/dib" ] || python3 -m pip install -q --disable-pip-version-check --no-deps --target "$wheels/dib" diskimage-builder==3.43.0
[ -d "$wheels/ipab" ] || python3 -m pip install -q --disable-pip-version-check --no-deps --target "$wheels/ipab" ironic-python-agent-builder==7.4.0
repo() { # name version: a git repository of the sdist, tagged with the version
  local d="$cache/git/$1"
  if [ ! -d "$d/.git" ]; then
    local t; t=$(mktemp -d); mkdir -p "$d"
    python3 -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: -d "$t" "$1==$2"
    tar xzf "$t"/*.tar.gz -C "$d" --strip-components=1; rm -rf "$t"
    (cd "$d" && git init -q && git add -A && git -c user.name=b -c user.email=b@b commit -qm sdist && git tag "$2")
  fi
  echo "$d"
}
reqs="$cache/git/requirements"
if [ ! -d "$reqs/.git" ]; then
  mkdir -p "$reqs"
  ls "$cache/pip-wheelhouse" | grep '\.whl$' | sed -E 's/^([^-]+)-([^-]+)-.*/\1==\2/' | grep -v '^ironic_python_agent==' > "$reqs/upper-constraints.txt"
  (cd "$reqs" && git init -q && git add -A && git -c user.name=b -c user.email=b@b commit -qm uc)
fi
mkdir -p "$work/up"
cat > "$work/up/image.toml" <<'TOML'
[image]
name = "ipa"
elements = ["base-debian", "ironic-python-agent-ramdisk", "ironic-python-agent-tls", "devuser", "dynamic-login", "dhcp-all-interfaces"]
outputs = ["ramdisk-tar"]
kernel = "image"
[params.base-debian]
packages = ["linux-image-cloud-amd64", "systemd", "systemd-sysv", "python3", "python3-venv", "git"]
TOML
printf '[output.ramdisk-tar]\nmax = "1GiB"\n' > "$work/up/size-budget.toml"
up_s=$(DIB_REPOLOCATION_ironic_python_agent=$(repo ironic-python-agent 13.0.0) DIB_REPOREF_ironic_python_agent=13.0.0 \
  DIB_REPOLOCATION_glean=$(repo glean 1.25.1) DIB_REPOREF_glean=1.25.1 \
  DIB_REPOLOCATION_requirements="$reqs" DIB_REPOREF_requirements=master \
  SMELT_CACHE_DIR="$work/up-cache" /usr/bin/time -f '%e' -o "$work/t" "$smelt" build "$work/up/image.toml" -o "$work/up/out" -q \
  --elements-path "$wheels/ipab/share/ironic-python-agent-builder/dib" --elements-path "$wheels/dib/diskimage_builder/elements" \
  --source-date-epoch 1700000000 2>/dev/null && cat "$work/t")
tar -xf "$work/up/out/ipa.tar" -C "$work/up/out"
printf '%-34s %12s %12s %9s %9s\n' "smelt, IPA-builder's elements" "$(mib "$(stat -c %s "$work/up/out/ipa.initramfs")")" \
  "$(mib "$(jq '.tree.apparent_bytes' "$work/up/out/report.json")")" \
  "$(jq '.tree.files + .tree.dirs + .tree.symlinks' "$work/up/out/report.json")" "$up_s"
if command -v ironic-python-agent-builder >/dev/null; then
  # The same sources as smelt's build of its elements (IPA, glean and the constraints
  # from local repositories), and where the registries sit behind a proxy with its own
  # CA (SSL_CERT_FILE), an element giving pip in its chroot that CA: for this benchmark
  # only, it stays in IPA-builder's image.
  ca_element=()
  if [ -n "${SSL_CERT_FILE:-}" ]; then
    mkdir -p "$work/ipab-elements/host-ca/extra-data.d" "$work/ipab-elements/host-ca/install.d"
    printf '#!/bin/bash\ncp %q "$TMP_HOOKS_PATH/host-ca.pem"\n' "$SSL_CERT_FILE" \
      > "$work/ipab-elements/host-ca/extra-data.d/00-host-ca"
    printf '#!/bin/bash\nset -e\nmkdir -p /usr/local/share/ca-certificates\ncp /tmp/in_target.d/host-ca.pem /usr/local/share/ca-certificates/host-ca.crt\ncat /tmp/in_target.d/host-ca.pem >> /etc/ssl/certs/ca-certificates.crt\n' \
      > "$work/ipab-elements/host-ca/install.d/39-host-ca"
    chmod +x "$work/ipab-elements/host-ca/"*/*
    ca_element=(-e host-ca)
  fi
  (cd "$work" && ELEMENTS_PATH="$work/ipab-elements" DIB_IMAGE_CACHE="$work/ipab-cache" \
    DIB_DEBIAN_SECURITY_MIRROR="${DIB_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}" \
    DIB_REPOLOCATION_ironic_python_agent=$(repo ironic-python-agent 13.0.0) DIB_REPOREF_ironic_python_agent=13.0.0 \
    DIB_REPOLOCATION_glean=$(repo glean 1.25.1) DIB_REPOREF_glean=1.25.1 \
    DIB_REPOLOCATION_requirements="$reqs" DIB_REPOREF_requirements=master \
    /usr/bin/time -f '%e' -o t ironic-python-agent-builder -r bookworm -o ipab "${ca_element[@]}" debian-minimal >/dev/null 2>&1)
  ipab=$(stat -c %s "$work/ipab.initramfs")
  ipab_unpacked=$(zcat "$work/ipab.initramfs" | (mkdir -p "$work/x" && cd "$work/x" && cpio -id --quiet 2>/dev/null); du -sb "$work/x" | cut -f1)
  printf '%-34s %12s %12s %9s %9s\n' "ironic-python-agent-builder (gzip)" "$(mib "$ipab")" "$(mib "$ipab_unpacked")" \
    "$(find "$work/x" | wc -l)" "$(cat "$work/t")"
  ipab_mib=$(mib "$ipab")
  ipab_s=$(cat "$work/t")
else
  # Rebuilt on this machine 2026-12-02 with the same sources (the issue quoted 162 s,
  # from another day's mirror and network).
  printf '%-34s %12s %12s %9s %9s   (measured 2026-12-02, not rebuilt here)\n' \
    "ironic-python-agent-builder (gzip)" 304 1005 22725 343
  ipab_mib=304
  ipab_s=343
fi
awk -v s="$(mib "$compressed")" -v i="$ipab_mib" -v c="$cold" -v u="$up_s" -v t="$ipab_s" 'BEGIN {
  printf "ratios: initrd smelt/IPA-builder %.2f (goal <= 0.5); cold build smelt/IPA-builder %.2f native, %.2f its elements (goal <= 1.0)\n",
    s / i, c / t, u / t }'
echo
echo "largest contributors (report.json):"
jq -r '.tree.elements | to_entries | sort_by(-.value.apparent_bytes) | .[:5][] |
  "  \(.key): \(.value.apparent_bytes / 1048576 | floor) MiB"' "$work/warm/report.json"
jq -r '.largest[:8][] | "  \(.path): \(.bytes / 1048576 * 10 | floor / 10) MiB (\(.element))"' "$work/warm/report.json"
echo "largest packages (report.json, native / IPA-builder's elements):"
jq -r '.packages[:8][] | "  \(.name): \(.bytes / 1048576 * 10 | floor / 10) MiB"' "$work/warm/report.json"
jq -r '.packages[:8][] | "  \(.name): \(.bytes / 1048576 * 10 | floor / 10) MiB"' "$work/up/out/report.json"
