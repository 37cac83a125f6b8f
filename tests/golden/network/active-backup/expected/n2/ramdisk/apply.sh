#!/bin/sh
# Network of node n2 (acme), applied at boot; written by smelt.
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

dev=$(by_mac 52:54:00:00:02:01) || { say "link ten0: no interface has MAC 52:54:00:00:02:01"; fail=1; dev=""; }
if [ -n "$dev" ] && [ "$dev" != "ten0" ]; then
    ip link set dev "$dev" down
    run ip link set dev "$dev" name ten0
fi
dev=$(by_mac 52:54:00:00:02:02) || { say "link one0: no interface has MAC 52:54:00:00:02:02"; fail=1; dev=""; }
if [ -n "$dev" ] && [ "$dev" != "one0" ]; then
    ip link set dev "$dev" down
    run ip link set dev "$dev" name one0
fi

[ -e /sys/class/net/bonding_masters ] || modprobe bonding max_bonds=0 2>/dev/null || insmod bonding max_bonds=0
# bonding loaded without max_bonds=0 made a bond0 already: reuse it.
grep -qw bond0 /sys/class/net/bonding_masters || run sh -c 'echo +bond0 > /sys/class/net/bonding_masters'
ip link set dev bond0 down
echo active-backup > /sys/class/net/bond0/bonding/mode
echo 100 > /sys/class/net/bond0/bonding/miimon
ip link set dev ten0 down
run sh -c 'echo +ten0 > /sys/class/net/bond0/bonding/slaves'
ip link set dev one0 down
run sh -c 'echo +one0 > /sys/class/net/bond0/bonding/slaves'
echo ten0 > /sys/class/net/bond0/bonding/primary

# Up in order: links, bonds, VLANs.
run ip link set dev ten0 up
run ip link set dev one0 up
run ip link set dev bond0 up
run ip addr add 10.20.0.21/24 dev bond0
run ip route add default via 10.20.0.1 dev bond0

: > /etc/resolv.conf
echo "search acme.example" >> /etc/resolv.conf
echo "nameserver 10.20.0.53" >> /etc/resolv.conf
echo n2 > /etc/hostname
hostname n2 2>/dev/null

# One line on the console: what each interface ended up with.
summary="node n2:"
summary="$summary bond0[$(cat /sys/class/net/bond0/bonding/slaves 2>/dev/null)] $(cat /sys/class/net/bond0/operstate 2>/dev/null) $(cut -d' ' -f1 /sys/class/net/bond0/bonding/mode 2>/dev/null);"
summary="$summary bond0 $(ip -o addr show dev bond0 2>/dev/null | awk '$3 != "inet6" || $4 !~ /^fe80/ {printf "%s%s", sep, $4; sep=" "}');"
say "$summary"
[ $fail = 0 ] || say "node n2: some steps FAILED (see above)"
# Tell smelt deliver (the URL from client.toml's [deliver] check-in, or smelt.report=).
[ -x /etc/smelt/network/check-in ] && /etc/smelt/network/check-in n2 "$summary" $fail &
exit $fail
