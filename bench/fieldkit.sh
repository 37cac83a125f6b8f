#!/usr/bin/env bash
# Benchmark: the size of examples/fieldkit's ISO (ansible-core 2.19.14, trimmed by
# python-trim) with the bundled interpreter and with the system one, against the
# targets (35 and 26 MiB) and the field report's own hand trim (47.6 MiB, as that
# report measured it; its script is not public); and the build time from a warm venv.
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
build() { # interpreter, output dir: prints wall seconds of a build
  /usr/bin/time -f '%e' -o "$work/t" "$smelt" build "$work/image.toml" --elements-path "$work/elements" -o "$work/$2" -q \
    --set "agent.payload=$venv" --set "python-trim.interpreter=$1" --source-date-epoch 1700000000 2>/dev/null
  cat "$work/t"
}
printf '%-28s %10s %10s %12s\n' "" "ISO MiB" "target" "warm build s"
for interpreter in bundled system; do
  build "$interpreter" "$interpreter" >/dev/null   # fills the bytecode and strip caches
  seconds=$(build "$interpreter" "$interpreter")
  mib=$(awk -v b="$(stat -c %s "$work/$interpreter/fieldkit.iso")" 'BEGIN { printf "%.1f", b / 1048576 }')
  target=$([ "$interpreter" = bundled ] && echo 35 || echo 26)
  printf '%-28s %10s %10s %12s\n' "interpreter = $interpreter" "$mib" "$target" "$seconds"
  eval "${interpreter}_mib=$mib"
done
printf '%-28s %10s\n' "field report's own trim" "47.6"
awk -v b="$bundled_mib" -v s="$system_mib" 'BEGIN {
  printf "ratios: bundled/field report %.2f, system/field report %.2f, bundled/target %.2f, system/target %.2f\n",
    b / 47.6, s / 47.6, b / 35, s / 26 }'
