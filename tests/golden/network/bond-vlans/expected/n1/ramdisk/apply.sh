#!/bin/sh
# Network of node n1 (acme), applied at boot; written by smelt.
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

dev=$(by_mac 52:54:00:00:01:01) || { say "link fast0: no interface has MAC 52:54:00:00:01:01"; fail=1; dev=""; }
if [ -n "$dev" ] && [ "$dev" != "fast0" ]; then
    ip link set dev "$dev" down
    run ip link set dev "$dev" name fast0
fi
run ip link set dev fast0 mtu 9000
dev=$(by_mac 52:54:00:00:01:02) || { say "link fast1: no interface has MAC 52:54:00:00:01:02"; fail=1; dev=""; }
if [ -n "$dev" ] && [ "$dev" != "fast1" ]; then
    ip link set dev "$dev" down
    run ip link set dev "$dev" name fast1
fi
run ip link set dev fast1 mtu 9000

[ -e /sys/class/net/bonding_masters ] || modprobe bonding max_bonds=0 2>/dev/null || insmod bonding max_bonds=0
# bonding loaded without max_bonds=0 made a bond0 already: reuse it.
grep -qw bond0 /sys/class/net/bonding_masters || run sh -c 'echo +bond0 > /sys/class/net/bonding_masters'
ip link set dev bond0 down
echo 802.3ad > /sys/class/net/bond0/bonding/mode
echo 100 > /sys/class/net/bond0/bonding/miimon
echo fast > /sys/class/net/bond0/bonding/lacp_rate
echo layer3+4 > /sys/class/net/bond0/bonding/xmit_hash_policy
ip link set dev fast0 down
run sh -c 'echo +fast0 > /sys/class/net/bond0/bonding/slaves'
ip link set dev fast1 down
run sh -c 'echo +fast1 > /sys/class/net/bond0/bonding/slaves'

[ -d /proc/net/vlan ] || modprobe 8021q 2>/dev/null || insmod 8021q
run ip link add link bond0 name front type vlan id 100
run ip link add link bond0 name back type vlan id 200

# Up in order: links, bonds, VLANs.
run ip link set dev fast0 up
run ip link set dev fast1 up
run ip link set dev bond0 up
run ip link set dev front up
run ip link set dev back up
run ip addr add 10.10.0.11/24 dev front
run ip addr add 192.168.50.11/24 dev back
run ip route add default via 10.10.0.1 dev front
run ip route add 192.168.60.0/24 via 192.168.50.254 dev back

: > /etc/resolv.conf
echo "search acme.example" >> /etc/resolv.conf
echo "nameserver 10.10.0.53" >> /etc/resolv.conf
echo "nameserver 10.10.0.54" >> /etc/resolv.conf
echo n1 > /etc/hostname
hostname n1 2>/dev/null
echo Europe/Madrid > /etc/timezone

# One line on the console: what each interface ended up with.
summary="node n1:"
summary="$summary bond0[$(cat /sys/class/net/bond0/bonding/slaves 2>/dev/null)] $(cat /sys/class/net/bond0/operstate 2>/dev/null) $(cut -d' ' -f1 /sys/class/net/bond0/bonding/mode 2>/dev/null);"
summary="$summary front $(ip -o addr show dev front 2>/dev/null | awk '$3 != "inet6" || $4 !~ /^fe80/ {printf "%s%s", sep, $4; sep=" "}');"
summary="$summary back $(ip -o addr show dev back 2>/dev/null | awk '$3 != "inet6" || $4 !~ /^fe80/ {printf "%s%s", sep, $4; sep=" "}');"
say "$summary"
[ $fail = 0 ] || say "node n1: some steps FAILED (see above)"
# Tell smelt deliver (the URL from client.toml's [deliver] check-in, or smelt.report=).
[ -x /etc/smelt/network/check-in ] && /etc/smelt/network/check-in n1 "$summary" $fail &
exit $fail
