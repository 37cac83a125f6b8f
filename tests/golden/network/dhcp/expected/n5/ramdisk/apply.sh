#!/bin/sh
# Network of node n5 (acme), applied at boot; written by smelt.
# Works with busybox ip or iproute2. Bonds are made through sysfs: busybox `ip link
# add type bond` ignores the mode, and the mode must be set before links are enslaved.
say() { echo "smelt-network: $*"; }
fail=0
run() { "$@" || { say "FAILED: $*"; fail=1; }; }
by_mac() {
    for d in /sys/class/net/*; do
        [ "$(cat "$d/address" 2>/dev/null)" = "$1" ] && { echo "${d##*/}"; return 0; }
    done
    return 1
}

dev=$(by_mac 52:54:00:00:05:01) || { say "link eth0: no interface has MAC 52:54:00:00:05:01"; fail=1; dev=""; }
if [ -n "$dev" ] && [ "$dev" != "eth0" ]; then
    ip link set dev "$dev" down
    run ip link set dev "$dev" name eth0
fi

# Up in order: links, bonds, VLANs.
run ip link set dev eth0 up
udhcpc -i eth0 -n -q -t 5 -T 1 -s /etc/smelt/network/udhcpc.script >/dev/null 2>&1 || say "eth0: no DHCP answer"

: > /etc/resolv.conf
echo n5 > /etc/hostname
hostname n5 2>/dev/null

# One line on the console: what each interface ended up with.
summary="node n5:"
summary="$summary eth0 $(ip -o addr show dev eth0 2>/dev/null | awk '$3 != "inet6" || $4 !~ /^fe80/ {printf "%s%s", sep, $4; sep=" "}');"
say "$summary"
[ $fail = 0 ] || say "node n5: some steps FAILED (see above)"
# Tell smelt deliver (the URL from client.toml's [deliver] check-in, or smelt.report=).
[ -x /etc/smelt/network/check-in ] && /etc/smelt/network/check-in n5 "$summary" $fail &
exit $fail
