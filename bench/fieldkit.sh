#!/usr/bin/env bash
# Benchmark: the Python field kits' ISO sizes, as python-trim makes them from venvs of
# Debian's /usr/bin/python3 — examples/fieldkit (ansible-core 2.19.14) and
# examples/netkit (the `ansible` 12.3.0 package, trimmed to its playbook) — with the
# bundled interpreter and with the system one, files stored plain and compressed
# (zisofs), against the untrimmed venv, the targets (50 MiB plain for a BMC's virtual
# media, 35 MiB zisofs bundled) and the field report's own hand trim of ansible-core
# (47.6 MiB, as that report measured it; its script is not public); and the build time
# from a warm venv. The venvs come from PyPI once and are kept in ~/.cache/smelt-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${SMELT_BENCH_CACHE:-$HOME/.cache/smelt-bench}
deps="cffi==2.1.1 cryptography==50.0.2 Jinja2==3.1.6 MarkupSafe==3.0.4 packaging==26.4 pycparser==3.12 PyYAML==6.0.4 resolvelib==1.2.1"
venv() { # name, what to pip install: the venv's path, made once
  local v="$cache/$1"
  if [ ! -x "$v/bin/ansible" ]; then
    rm -rf "$v"
    /usr/bin/python3 -m venv "$v"
    "$v/bin/pip" install -q --disable-pip-version-check $2 $deps >&2
  fi
  echo "$v"
}
core=$(venv ansible-core-2.19.14-debian "ansible-core==2.19.14")
full=$(venv ansible-12.3.0-debian "ansible==12.3.0 ansible-core==2.19.14")
cargo build --release -q
smelt="$PWD/target/release/smelt"
work=$(mktemp -d /var/tmp/smelt-fieldkit.XXXXXX)
trap 'rm -rf "$work"' EXIT
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

printf '%-44s %10s %10s %11s %14s\n' "" "venv MiB" "plain MiB" "zisofs MiB" "warm build s"
for kit in fieldkit:$core netkit:$full; do
  example=${kit%%:*} v=${kit#*:}
  mkdir -p "$work/$example"
  cp -r "examples/$example/." "$work/$example"
  printf '[output.iso]\nmax = "1GiB"\n' > "$work/$example/size-budget.toml"
  sed 's/^iso-compression = .*/iso-compression = "none"/' "$work/$example/image.toml" > "$work/$example/plain.toml"
  build() { # image file, interpreter, output dir: prints wall seconds of a build
    /usr/bin/time -f '%e' -o "$work/t" "$smelt" build "$work/$example/$1" --elements-path "$work/$example/elements" \
      -o "$work/$example/$3" -q --set "agent.payload=$v" --set "python-trim.interpreter=$2" \
      --source-date-epoch 1700000000 2>/dev/null
    cat "$work/t"
  }
  venv_bytes=$(du -sb "$v" | cut -f1)
  for interpreter in bundled system; do
    build plain.toml "$interpreter" "$interpreter-plain" >/dev/null
    build image.toml "$interpreter" "$interpreter" >/dev/null   # fills the bytecode, strip and zisofs caches
    seconds=$(build image.toml "$interpreter" "$interpreter")
    plain=$(stat -c %s "$work/$example/$interpreter-plain/$example.iso")
    packed=$(stat -c %s "$work/$example/$interpreter/$example.iso")
    printf '%-44s %10s %10s %11s %14s\n' "$example ($(basename "$v")), $interpreter" "$(mib "$venv_bytes")" \
      "$(mib "$plain")" "$(mib "$packed")" "$seconds"
    echo "$example $interpreter $venv_bytes $plain $packed" >> "$work/rows"
  done
done
printf '%-44s %10s %10s\n' "field report's own trim (ansible-core)" "" "47.6"
awk 'BEGIN { m = 1048576 } {
  printf "%s, %s: %.3f of the venv plain, %.3f zisofs; %.2f of 50 MiB plain", $1, $2, $4 / $3, $5 / $3, $4 / (50 * m)
  if ($2 == "bundled") printf ", %.2f of 35 MiB zisofs", $5 / (35 * m)
  if ($1 == "fieldkit") printf "; %.2f of the field report'"'"'s trim", $4 / (47.6 * m)
  printf "\n" }' "$work/rows"
