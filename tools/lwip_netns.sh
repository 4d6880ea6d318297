#!/usr/bin/env bash
# A network namespace with a TAP device, so the lwIP backend (components/tcp_core/port/lwip) can run on the host
# with kernel-socket peers next to it and no address outside the namespace.
#
#   tools/lwip_netns.sh up NAME          create namespace NAME holding TAP device $TC_LWIP_TAP (default tctap0) with
#                                        the Linux side at 10.77.0.1/24; lwIP takes 10.77.0.2/24. Prints, for eval:
#                                        TC_LWIP_TAP=tctap0 TC_LWIP_ADDRESS=10.77.0.2/24 TC_LWIP_PEER=10.77.0.1
#   tools/lwip_netns.sh down NAME        remove the TAP device and the namespace (nothing else is touched)
#   tools/lwip_netns.sh run NAME CMD...  up, run CMD inside NAME with those variables exported, then down (always)
#
# Processes using lwIP run inside the namespace (ip netns exec NAME ...) so that they find the TAP device; their
# peers (curl, python, kernel sockets) run there too and talk to 10.77.0.2. Each namespace has its own addresses,
# so several can use the same subnet at once. Needs root and /dev/net/tun.
set -euo pipefail

TAP=${TC_LWIP_TAP:-tctap0}
LINUX_SIDE=10.77.0.1
LWIP_SIDE=10.77.0.2
PREFIX=24

die() {
    echo "lwip_netns: $*" >&2
    exit 1
}

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

check_name() {
    [[ $1 =~ ^[A-Za-z0-9_-]{1,32}$ ]] || die "bad namespace name '$1' (letters, digits, _ and -, at most 32)"
    [[ $TAP =~ ^[A-Za-z0-9_-]{1,15}$ ]] || die "bad TAP name '$TAP' (at most 15 characters)"
}

ns_exists() {
    ip netns list | awk '{print $1}' | grep -qx -- "$1"
}

up() {
    local ns=$1
    [ "$(id -u)" -eq 0 ] || die "needs root (ip netns, TAP devices)"
    [ -c /dev/net/tun ] || die "/dev/net/tun is missing (modprobe tun)"
    command -v ip >/dev/null || die "the ip command (iproute2) is missing"
    ns_exists "$ns" && die "namespace $ns already exists (tools/lwip_netns.sh down $ns)"
    ip netns add "$ns"
    # From here on a failure must not leave a half-built namespace behind.
    if ! {
        ip -n "$ns" link set lo up &&
            ip -n "$ns" tuntap add dev "$TAP" mode tap &&
            ip -n "$ns" addr add "$LINUX_SIDE/$PREFIX" dev "$TAP" &&
            ip -n "$ns" link set "$TAP" up
    }; then
        ip netns del "$ns" 2>/dev/null || true
        die "could not set up $TAP in $ns"
    fi
    echo "TC_LWIP_TAP=$TAP TC_LWIP_ADDRESS=$LWIP_SIDE/$PREFIX TC_LWIP_PEER=$LINUX_SIDE"
}

down() {
    local ns=$1
    ns_exists "$ns" || return 0
    # The TAP device is persistent: delete it explicitly rather than rely on the namespace teardown.
    ip -n "$ns" link del "$TAP" 2>/dev/null || true
    ip netns del "$ns"
}

[ $# -ge 2 ] || usage
cmd=$1
ns=$2
shift 2
check_name "$ns"
case $cmd in
up)
    [ $# -eq 0 ] || usage
    up "$ns"
    ;;
down)
    [ $# -eq 0 ] || usage
    down "$ns"
    ;;
run)
    [ $# -ge 1 ] || usage
    vars=$(up "$ns")
    trap 'down "$ns"' EXIT
    trap 'exit 130' INT TERM # so that the EXIT trap removes the namespace on Ctrl-C too
    # shellcheck disable=SC2086 # vars is "A=x B=y C=z", split on purpose
    env_args=($vars)
    rc=0
    ip netns exec "$ns" env "${env_args[@]}" "$@" || rc=$?
    exit $rc
    ;;
*)
    usage
    ;;
esac
