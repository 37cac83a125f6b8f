#!/bin/sh
# Network of node n4 (acme), applied at boot; written by smelt.
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

dev=$(by_mac 52:54:00:00:04:01) || { say "link eth0: no interface has MAC 52:54:00:00:04:01"; fail=1; dev=""; }
if [ -n "$dev" ] && [ "$dev" != "eth0" ]; then
    ip link set dev "$dev" down
    run ip link set dev "$dev" name eth0
fi

# Up in order: links, bonds, VLANs.
run ip link set dev eth0 up
run ip addr add 10.40.0.41/24 dev eth0
run ip addr add 2001:db8:40::41/64 dev eth0
run ip route add default via 10.40.0.1 dev eth0
run ip -6 route add default via 2001:db8:40::1 dev eth0
run ip -6 route add 2001:db8:99::/48 via 2001:db8:40::fe dev eth0

: > /etc/resolv.conf
echo "search v6.acme.example" >> /etc/resolv.conf
echo "nameserver 2001:db8:40::53" >> /etc/resolv.conf
echo "nameserver 10.40.0.53" >> /etc/resolv.conf
echo n4 > /etc/hostname
hostname n4 2>/dev/null

# One line on the console: what each interface ended up with.
summary="node n4:"
summary="$summary eth0 $(ip -o addr show dev eth0 2>/dev/null | awk '$3 != "inet6" || $4 !~ /^fe80/ {printf "%s%s", sep, $4; sep=" "}');"
say "$summary"
[ $fail = 0 ] || say "node n4: some steps FAILED (see above)"
# Tell smelt deliver (the URL from client.toml's [deliver] check-in, or smelt.report=).
[ -x /etc/smelt/network/check-in ] && /etc/smelt/network/check-in n4 "$summary" $fail &
exit $fail
