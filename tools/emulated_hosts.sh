#!/bin/sh
# Runs a command with N emulated hosts for Open MPI: each host is a network
# namespace with a TUN device ppx0 (10.77.0.I/24, I = 1..N), and netdelay
# (tools/netdelay.c) routes IPv4 between them holding every packet for
# DELAY_US one way (the kernel here has no netem). The command itself runs
# in one more namespace (10.77.0.254), where mpirun then sees N remote hosts
# reached over TCP only.
#
#   emulated_hosts.sh NETDELAY N DELAY_US COMMAND [ARGS...]
#
# In COMMAND's arguments, @MPIRUN@ becomes a wrapper of mpirun ($MPIRUN, or
# mpirun from PATH) that adds the hostfile, the rsh agent that starts each
# host's daemon inside its namespace (ip netns exec), and TCP-only
# transports on the emulated subnet. COMMAND also gets PPX_EMU_NETNS (the
# hosts' namespaces, in host order) and PPX_EMU_ADDRS (their addresses).
# Exits with COMMAND's status, or 77 with a reason on stderr where
# namespaces or TUN devices cannot be made (not root, no ip, a container
# that forbids them). Everything it made is removed on every exit.
set -u
if [ $# -lt 4 ]; then
    echo "usage: emulated_hosts.sh NETDELAY N DELAY_US COMMAND [ARGS...]" >&2
    exit 2
fi
netdelay=$1 hosts=$2 delay_us=$3
shift 3
skip() {
    echo "emulated_hosts: skipped: $*" >&2
    exit 77
}
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
command -v ip >/dev/null || skip "no ip (iproute2)"
[ -c /dev/net/tun ] || skip "no /dev/net/tun"

tag="ppx$$"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ppx-emu.XXXXXX") || exit 1
made=""
fwd=""
cleanup() {
    [ -n "$fwd" ] && kill "$fwd" 2>/dev/null && wait "$fwd" 2>/dev/null
    for ns in $made; do
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

netns="" addrs="" pairs="" agent_cases=""
i=1
while [ "$i" -le "$hosts" ]; do
    ns="$tag-h$i" addr="10.77.0.$i"
    ip netns add "$ns" 2>"$tmp/err" || skip "ip netns add: $(cat "$tmp/err")"
    made="$made $ns"
    netns="$netns $ns" addrs="$addrs $addr" pairs="$pairs $ns=$addr"
    agent_cases="$agent_cases    $addr) ns=$ns name=emu-h$i ;;
"
    i=$((i + 1))
done
launcher="$tag-l"
ip netns add "$launcher" 2>"$tmp/err" || skip "ip netns add: $(cat "$tmp/err")"
made="$made $launcher"

# netdelay prints "ready" once every device is up; a 77 from it is a skip.
# shellcheck disable=SC2086
"$netdelay" "$delay_us" $pairs "$launcher=10.77.0.254" >"$tmp/ready" 2>"$tmp/fwd.err" &
fwd=$!
n=0
until grep -q ready "$tmp/ready" 2>/dev/null; do
    if ! kill -0 "$fwd" 2>/dev/null; then
        wait "$fwd"
        rc=$?
        fwd=""
        [ $rc = 77 ] && skip "$(cat "$tmp/fwd.err")"
        cat "$tmp/fwd.err" >&2
        exit 1
    fi
    n=$((n + 1))
    [ $n -gt 100 ] && { echo "emulated_hosts: netdelay not ready after 10 s" >&2; exit 1; }
    sleep 0.1
done

# Open MPI's rsh launcher runs `AGENT [options] HOST COMMAND...`, where
# COMMAND is meant for a remote shell (it sets PATH, then starts orted).
# Each host also gets its own hostname (emu-hI, a UTS namespace), as the
# node names in errors come from it.
cat >"$tmp/agent" <<EOF
#!/bin/sh
while [ "\${1#-}" != "\$1" ]; do shift; done
case \$1 in
$agent_cases    *) echo "emulated_hosts agent: unknown host \$1" >&2; exit 1 ;;
esac
shift
exec ip netns exec "\$ns" unshare --uts /bin/sh -c 'hostname "\$0" && exec /bin/sh -c "\$1"' "\$name" "\$*"
EOF
for a in $addrs; do
    echo "$a slots=1"
done >"$tmp/hostfile"
# No tree spawn: every daemon is started by mpirun's own agent. TCP only,
# on the emulated subnet: no shared memory between the "hosts".
cat >"$tmp/mpirun" <<EOF
#!/bin/sh
exec ${MPIRUN:-mpirun} --hostfile $tmp/hostfile --mca plm_rsh_agent $tmp/agent \\
    --mca plm_rsh_no_tree_spawn 1 --mca pml ob1 --mca btl tcp,self \\
    --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 "\$@"
EOF
chmod +x "$tmp/agent" "$tmp/mpirun"

for arg in "$@"; do
    shift
    [ "$arg" = @MPIRUN@ ] && arg="$tmp/mpirun"
    set -- "$@" "$arg"
done
# In the background, so a TERM (meson's timeout) reaches it now and the
# namespaces go once it has ended, not after it finished on its own.
PPX_EMU_NETNS="${netns# }" PPX_EMU_ADDRS="${addrs# }" PPX_EMU_FORWARDER=$fwd \
    ip netns exec "$launcher" "$@" <&0 &
child=$!
trap 'kill -TERM $child 2>/dev/null' INT TERM HUP
wait $child
rc=$?
while kill -0 $child 2>/dev/null; do
    wait $child
    rc=$?
done
exit $rc
