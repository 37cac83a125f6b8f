#!/usr/bin/env bash
# Benchmark: the size of examples/fieldkit's ISO (ansible-core 2.19.14, trimmed by
# python-trim) with the bundled interpreter and with the system one, files stored plain
# and compressed (zisofs, the example's setting), against the targets (35 and 26 MiB)
# and the field report's own hand trim (47.6 MiB, as that report measured it; its
# script is not public); and the build time from a warm venv.
# The venv comes from PyPI once and is kept in ~/.cache/smelt-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${SMELT_BENCH_CACHE:-$HOME/.cache/smelt-bench}
venv="$cache/ansible-core-2.19.14"
if [ ! -x "$venv/bin/ansible" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check ansible-core==2.19.14 cffi==2.1.1 cryptography==50.0.2 \
    Jinja2==3.1.6 MarkupSafe==3.0.4 packaging==26.4 pycparser==3.12 PyYAML==6.0.4 resolvelib==1.2.1
fi
cargo build --release -q
smelt="$PWD/target/release/smelt"
work=$(mktemp -d /var/tmp/smelt-fieldkit.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r examples/fieldkit/. "$work"
printf '[output.iso]\nmax = "1GiB"\n' > "$work/size-budget.toml"
echo "venv: $(( $(du -sb "$venv" | cut -f1) / 1048576 )) MiB"
sed 's/^iso-compression = .*/iso-compression = "none"/' "$work/image.toml" > "$work/plain.toml"
build() { # image file, interpreter, output dir: prints wall seconds of a build
  /usr/bin/time -f '%e' -o "$work/t" "$smelt" build "$work/$1" --elements-path "$work/elements" -o "$work/$3" -q \
    --set "agent.payload=$venv" --set "python-trim.interpreter=$2" --source-date-epoch 1700000000 2>/dev/null
  cat "$work/t"
}
mib() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", b / 1048576 }'; }
printf '%-28s %10s %11s %8s %14s\n' "" "plain MiB" "zisofs MiB" "target" "warm build s"
for interpreter in bundled system; do
  build plain.toml "$interpreter" "$interpreter-plain" >/dev/null
  build image.toml "$interpreter" "$interpreter" >/dev/null   # fills the bytecode, strip and zisofs caches
  seconds=$(build image.toml "$interpreter" "$interpreter")
  plain=$(mib "$work/$interpreter-plain/fieldkit.iso")
  packed=$(mib "$work/$interpreter/fieldkit.iso")
  target=$([ "$interpreter" = bundled ] && echo 35 || echo 26)
  printf '%-28s %10s %11s %8s %14s\n' "interpreter = $interpreter" "$plain" "$packed" "$target" "$seconds"
  eval "${interpreter}_plain=$plain ${interpreter}_packed=$packed"
done
printf '%-28s %10s\n' "field report's own trim" "47.6"
awk -v bp="$bundled_plain" -v bz="$bundled_packed" -v sp="$system_plain" -v sz="$system_packed" 'BEGIN {
  printf "ratios to target: bundled %.2f plain, %.2f zisofs; system %.2f plain, %.2f zisofs\n", bp / 35, bz / 35, sp / 26, sz / 26
  printf "ratios to the field report: bundled %.2f plain, %.2f zisofs; system %.2f plain, %.2f zisofs\n",
    bp / 47.6, bz / 47.6, sp / 47.6, sz / 47.6 }'
