#!/bin/sh
# /init of the lanparty test guest (busybox sh; packed by scripts/build-guest.sh).
#
# Reads its task from the kernel command line and reports on the serial console in lines the
# host parses (lab/guest.ts):
#   LP-BOOT uptime_s=<s>                         init started
#   LP-RESULT <what> <target> ok|fail k=v ...    one per task
#   LP-DONE ok | LP-DONE fail <reason>           always last; then the guest lingers or powers off
# The host enforces a timeout and wants "LP-DONE ok", so a hang or a panic can never pass.
#
# Parameters (all optional):
#   lp.hostname=NAME    lp.mtu=BYTES        lp.ip=ADDR/LEN      lp.dhcp=1
#   lp.clientid=HEX     udhcpc sends option 61 = HEX (e.g. 01020000000001) instead of 01+MAC
#   lp.request=IP       udhcpc asks for IP (option 50) in its DISCOVER
#   lp.renew=1          with lp.dhcp: udhcpc keeps running; after ping and resolve, SIGUSR1 (renew)
#                       -> LP-RESULT dhcp-renew eth0 ok ip=IP
#   lp.release=1        with lp.dhcp: then SIGUSR2 (release) -> LP-RESULT dhcp-release eth0 ok ip=IP
#                       (and the address is gone from eth0)
#   lp.pause=S          seconds to wait before each renew and release (default 3), so the host
#                       can look at the lease table in between
#   lp.ping=IP[,IP..]   ping each, retrying until lp.deadline (peers boot in parallel)
#   lp.resolve=NAME[,NAME..]  nslookup -type=a NAME at the lease's DNS server (else lp.dns, else
#                       10.77.0.1), retrying until lp.deadline -> LP-RESULT resolve NAME ok ip=IP ms=MS
#   lp.refused=NAME[,NAME..]  the same query, once, must be refused -> LP-RESULT refused NAME ok ms=MS
#   lp.dns=IP           DNS server for lp.resolve and lp.refused when DHCP gave none
#   lp.iperf=server     one iperf3 test, then report what it received
#   lp.iperf=client:IP:SECONDS
#   lp.pingloop=IP[,IP..]:SECONDS  for SECONDS seconds, once a second, one ping (-W 1) to every
#                       target at once; one line per second:
#                       LP-TICK t=<s since the loop began> <ip>=ok|fail ...
#                       then per target LP-RESULT pingloop IP ok|fail ok=N fail=M last=ok|fail
#                       (ok when the last tick reached it). For watching a LAN across an outage.
#   lp.deadline=S       seconds after boot by which retries give up (default 90)
#   lp.wait=S           after LP-DONE, keep running S seconds (to answer peers), then power off
#
# Stages: mount, modules, link, address (static or DHCP), ping, resolve, renew, release, iperf,
# pingloop, report, linger, power off.

PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
exec </dev/console >/dev/console 2>&1

up_s() { cut -d' ' -f1 /proc/uptime; }
echo "LP-BOOT uptime_s=$(up_s)"

failures=""
fail() { failures="$failures${failures:+,}$1"; }

finish() {
    if [ -z "$failures" ]; then echo "LP-DONE ok"; else echo "LP-DONE fail $failures"; fi
    if [ -n "$lp_wait" ]; then sleep "$lp_wait"; fi
    echo "LP-POWEROFF uptime_s=$(up_s)"
    poweroff -f
    sleep 5
    exit 1
}

lp_hostname="" lp_mtu="" lp_ip="" lp_dhcp="" lp_ping="" lp_iperf="" lp_wait="" lp_deadline=90
lp_clientid="" lp_request="" lp_renew="" lp_release="" lp_pause=3 lp_resolve="" lp_refused="" lp_dns=""
lp_pingloop=""
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        lp.hostname=*) lp_hostname=${arg#*=} ;;
        lp.mtu=*) lp_mtu=${arg#*=} ;;
        lp.ip=*) lp_ip=${arg#*=} ;;
        lp.dhcp=*) lp_dhcp=${arg#*=} ;;
        lp.ping=*) lp_ping=${arg#*=} ;;
        lp.iperf=*) lp_iperf=${arg#*=} ;;
        lp.wait=*) lp_wait=${arg#*=} ;;
        lp.deadline=*) lp_deadline=${arg#*=} ;;
        lp.clientid=*) lp_clientid=${arg#*=} ;;
        lp.request=*) lp_request=${arg#*=} ;;
        lp.renew=*) lp_renew=${arg#*=} ;;
        lp.release=*) lp_release=${arg#*=} ;;
        lp.pause=*) lp_pause=${arg#*=} ;;
        lp.resolve=*) lp_resolve=${arg#*=} ;;
        lp.refused=*) lp_refused=${arg#*=} ;;
        lp.dns=*) lp_dns=${arg#*=} ;;
        lp.pingloop=*) lp_pingloop=${arg#*=} ;;
    esac
done
deadline=$(( ${lp_deadline} + $(up_s | cut -d. -f1) ))
before_deadline() { [ "$(up_s | cut -d. -f1)" -lt "$deadline" ]; }

[ -n "$lp_hostname" ] && hostname "$lp_hostname"

# Modules, in the dependency order build-guest.sh wrote.
while read -r m; do
    # "File exists" means already loaded (e.g. by a dependency's request), which is fine.
    [ -d "/sys/module/$m" ] && continue
    insmod "/lib/modules/$m.ko" || { dmesg | tail -n 5; echo "LP-DONE fail insmod-$m"; poweroff -f; }
done </lib/modules/load-order

ip link set lo up
n=0
while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
if [ ! -e /sys/class/net/eth0 ]; then
    fail no-eth0
    finish
fi
[ -n "$lp_mtu" ] && ip link set eth0 mtu "$lp_mtu"
ip link set eth0 up
echo "LP-RESULT link eth0 ok mac=$(cat /sys/class/net/eth0/address) mtu=$(cat /sys/class/net/eth0/mtu)"

if [ -n "$lp_ip" ]; then
    ip addr add "$lp_ip" dev eth0 && echo "LP-RESULT ip $lp_ip ok" || { echo "LP-RESULT ip $lp_ip fail"; fail ip; }
fi

if [ -n "$lp_dhcp" ]; then
    # The script prints the lease line straight to the console (udhcpc's own output goes to a
    # log) and appends "<event> <ip>" to /tmp/dhcp.events, which init waits on.
    cat >/tmp/udhcpc.sh <<'EOF'
#!/bin/sh
case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"; ip link set "$interface" up
        echo "deconfig -" >>/tmp/dhcp.events
        ;;
    bound|renew)
        if ! ip -4 addr show dev "$interface" | grep -q " $ip/"; then
            ip -4 addr flush dev "$interface"
            ip addr add "$ip/${mask:-24}" dev "$interface"
        fi
        [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
        [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
        echo "${dns%% *}" >/tmp/dhcp.dns
        tag=dhcp; [ "$1" = renew ] && tag=dhcp-renew
        echo "LP-RESULT $tag $interface ok ip=$ip mask=$mask subnet=$subnet broadcast=$broadcast router=${router%% *} dns=$(echo $dns | tr ' ' ',') lease=$lease server=$serverid domain=$domain hostname=$hostname" >/dev/console
        echo "$1 $ip" >>/tmp/dhcp.events
        ;;
esac
EOF
    chmod 755 /tmp/udhcpc.sh
    : >/tmp/dhcp.events
    dhcp_opts="-i eth0 -s /tmp/udhcpc.sh -f -n -t 20 -T 2 ${lp_hostname:+-x hostname:$lp_hostname} ${lp_clientid:+-x 0x3d:$lp_clientid} ${lp_request:+-r $lp_request}"
    if [ -z "$lp_renew$lp_release" ]; then
        udhcpc -q $dhcp_opts >/tmp/udhcpc.log 2>&1 ||
            { echo "LP-RESULT dhcp eth0 fail"; sed 's/^/udhcpc: /' /tmp/udhcpc.log; fail dhcp; }
    else
        # udhcpc keeps the lease (a background job of init), so it can be signalled later.
        udhcpc $dhcp_opts >/tmp/udhcpc.log 2>&1 &
        udhcpc_pid=$!
        while ! grep -q '^bound ' /tmp/dhcp.events && kill -0 "$udhcpc_pid" 2>/dev/null; do sleep 0.1; done
        if ! grep -q '^bound ' /tmp/dhcp.events; then
            echo "LP-RESULT dhcp eth0 fail"; sed 's/^/udhcpc: /' /tmp/udhcpc.log; fail dhcp; udhcpc_pid=""
        fi
    fi
fi
dns_server=$(cat /tmp/dhcp.dns 2>/dev/null)
dns_server=${dns_server:-${lp_dns:-10.77.0.1}}

# Waits until /tmp/dhcp.events holds more than N lines of EVENT, for at most S seconds.
wait_event() { # EVENT N S
    w=0
    while [ "$(grep -c "^$1 " /tmp/dhcp.events)" -le "$2" ] && [ $w -lt $(( $3 * 10 )) ]; do sleep 0.1; w=$((w + 1)); done
    [ "$(grep -c "^$1 " /tmp/dhcp.events)" -gt "$2" ]
}

# Ping each target: one probe at a time until the first answer (the peer may still be booting),
# then a short burst whose loss and average round trip are reported. A burst with no answer at all
# (a lossy path can lose three in a row) starts over, until lp.deadline.
for target in $(echo "$lp_ping" | tr ',' ' '); do
    tries=0 bursts=0
    while :; do
        until ping -c 1 -W 1 "$target" >/dev/null 2>&1; do
            tries=$((tries + 1))
            before_deadline || break
        done
        out=$(ping -c 3 -i 0.2 -W 2 "$target" 2>&1)
        bursts=$((bursts + 1))
        received=$(echo "$out" | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
        rtt=$(echo "$out" | sed -n 's#.*min/avg/max = [0-9.]*/\([0-9.]*\)/.*#\1#p')
        [ "${received:-0}" -gt 0 ] && break
        before_deadline || break
    done
    if [ "${received:-0}" -gt 0 ]; then
        echo "LP-RESULT ping $target ok rtt_ms=$rtt received=$received/3 retries=$tries bursts=$bursts"
    else
        echo "LP-RESULT ping $target fail retries=$tries bursts=$bursts"
        fail "ping-$target"
    fi
done

# Names: one A query at a time until an answer comes (the peer may not hold its lease yet).
ms_since() { awk -v a="$1" -v b="$(up_s)" 'BEGIN { printf "%d", (b - a) * 1000 }'; }
for name in $(echo "$lp_resolve" | tr ',' ' '); do
    addr=""
    while :; do
        t0=$(up_s)
        out=$(nslookup -type=a "$name" "$dns_server" 2>&1)
        ms=$(ms_since "$t0")
        addr=$(echo "$out" | awk '/^Name:/ { n = 1 } n && /^Address/ { print $NF; exit }')
        [ -n "$addr" ] && break
        before_deadline || break
        sleep 0.5
    done
    if [ -n "$addr" ]; then echo "LP-RESULT resolve $name ok ip=$addr ms=$ms server=$dns_server"
    else echo "LP-RESULT resolve $name fail server=$dns_server"; echo "$out" | sed 's/^/nslookup: /'; fail "resolve-$name"; fi
done
for name in $(echo "$lp_refused" | tr ',' ' '); do
    t0=$(up_s)
    out=$(nslookup -type=a "$name" "$dns_server" 2>&1)
    ms=$(ms_since "$t0")
    if echo "$out" | grep -q REFUSED; then echo "LP-RESULT refused $name ok ms=$ms server=$dns_server"
    else echo "LP-RESULT refused $name fail ms=$ms server=$dns_server"; echo "$out" | sed 's/^/nslookup: /'; fail "refused-$name"; fi
done

# Renew (SIGUSR1) and release (SIGUSR2) the lease udhcpc holds, each after lp.pause seconds.
if [ -n "$lp_renew" ] && [ -n "${udhcpc_pid:-}" ]; then
    sleep "$lp_pause"
    before=$(grep -c '^renew ' /tmp/dhcp.events)
    kill -USR1 "$udhcpc_pid"
    # On success the script has printed "LP-RESULT dhcp-renew ..." itself.
    wait_event renew "$before" 30 || { echo "LP-RESULT dhcp-renew eth0 fail"; sed 's/^/udhcpc: /' /tmp/udhcpc.log; fail dhcp-renew; }
fi
if [ -n "$lp_release" ] && [ -n "${udhcpc_pid:-}" ]; then
    sleep "$lp_pause"
    held=$(grep -E '^(bound|renew) ' /tmp/dhcp.events | tail -n 1 | cut -d' ' -f2)
    before=$(grep -c '^deconfig ' /tmp/dhcp.events)
    kill -USR2 "$udhcpc_pid"
    if wait_event deconfig "$before" 30 && ! ip -4 addr show dev eth0 | grep -q inet; then
        echo "LP-RESULT dhcp-release eth0 ok ip=$held"
    else
        echo "LP-RESULT dhcp-release eth0 fail ip=$held"; sed 's/^/udhcpc: /' /tmp/udhcpc.log; fail dhcp-release
    fi
fi

# iperf3 rates are read from the "receiver" summary line with -f m (always Mbits/sec).
mbps_of() { awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") r = $i } END { print r }' "$1"; }
case "$lp_iperf" in
    "") ;;
    server)
        echo "LP-RESULT iperf-server listening ok"
        iperf3 -s -1 -f m >/tmp/iperf.log 2>&1
        mbps=$(mbps_of /tmp/iperf.log)
        if [ -n "$mbps" ]; then echo "LP-RESULT iperf server ok mbps=$mbps"
        else echo "LP-RESULT iperf server fail"; sed 's/^/iperf3: /' /tmp/iperf.log; fail iperf; fi
        ;;
    client:*)
        rest=${lp_iperf#client:}
        server=${rest%%:*}
        seconds=${rest#*:}
        [ "$seconds" = "$rest" ] && seconds=5
        mbps=""
        while [ -z "$mbps" ]; do
            if iperf3 -c "$server" -t "$seconds" -f m >/tmp/iperf.log 2>&1; then
                mbps=$(mbps_of /tmp/iperf.log)
                break
            fi
            before_deadline || break
            sleep 0.5
        done
        if [ -n "$mbps" ]; then echo "LP-RESULT iperf $server ok mbps=$mbps seconds=$seconds"
        else echo "LP-RESULT iperf $server fail"; sed 's/^/iperf3: /' /tmp/iperf.log; fail iperf; fi
        ;;
    *) echo "LP-RESULT iperf $lp_iperf fail unknown-mode"; fail iperf-mode ;;
esac

# Ping loop: every second, one probe to each target in parallel (so a dead target costs the tick
# one second, not one per target), one LP-TICK line, then sleep to the next whole second.
if [ -n "$lp_pingloop" ]; then
    pl_targets=$(echo "${lp_pingloop%:*}" | tr ',' ' ')
    pl_seconds=${lp_pingloop##*:}
    [ "$pl_seconds" = "$lp_pingloop" ] && pl_seconds=30
    mkdir -p /tmp/pl
    for target in $pl_targets; do echo "0 0 -" >"/tmp/pl/$target.sum"; done
    pl_start=$(up_s)
    tick=0
    while [ "$tick" -lt "$pl_seconds" ]; do
        pl_pids=""
        for target in $pl_targets; do
            ( if ping -c 1 -W 1 "$target" >/dev/null 2>&1; then echo ok; else echo fail; fi >"/tmp/pl/$target" ) &
            pl_pids="$pl_pids $!"
        done
        wait $pl_pids
        line="LP-TICK t=$tick"
        for target in $pl_targets; do
            r=$(cat "/tmp/pl/$target")
            line="$line $target=$r"
            read -r n_ok n_fail _ <"/tmp/pl/$target.sum"
            if [ "$r" = ok ]; then n_ok=$((n_ok + 1)); else n_fail=$((n_fail + 1)); fi
            echo "$n_ok $n_fail $r" >"/tmp/pl/$target.sum"
        done
        echo "$line"
        tick=$((tick + 1))
        left=$(awk -v s="$pl_start" -v n="$tick" -v now="$(up_s)" 'BEGIN { d = s + n - now; if (d > 0) printf "%.2f", d; else print 0 }')
        [ "$left" != 0 ] && sleep "$left"
    done
    for target in $pl_targets; do
        read -r n_ok n_fail last <"/tmp/pl/$target.sum"
        if [ "$last" = ok ]; then echo "LP-RESULT pingloop $target ok ok=$n_ok fail=$n_fail last=$last"
        else echo "LP-RESULT pingloop $target fail ok=$n_ok fail=$n_fail last=$last"; fail "pingloop-$target"; fi
    done
fi

finish
