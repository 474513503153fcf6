#!/bin/sh
# /init of the lanparty test guest (busybox sh; packed by scripts/build-guest.sh).
#
# Reads its task from the kernel command line and reports on the serial console in lines the
# host parses (test/helpers/guest.ts):
#   LP-BOOT uptime_s=<s>                         init started
#   LP-RESULT <what> <target> ok|fail k=v ...    one per task
#   LP-DONE ok | LP-DONE fail <reason>           always last; then the guest lingers or powers off
# The host enforces a timeout and wants "LP-DONE ok", so a hang or a panic can never pass.
#
# Parameters (all optional):
#   lp.hostname=NAME    lp.mtu=BYTES        lp.ip=ADDR/LEN      lp.dhcp=1
#   lp.ping=IP[,IP..]   ping each, retrying until lp.deadline (peers boot in parallel)
#   lp.iperf=server     one iperf3 test, then report what it received
#   lp.iperf=client:IP:SECONDS
#   lp.deadline=S       seconds after boot by which retries give up (default 90)
#   lp.wait=S           after LP-DONE, keep running S seconds (to answer peers), then power off
#
# Stages: mount, modules, link, address, ping, iperf, report, linger, power off.

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
    cat >/tmp/udhcpc.sh <<'EOF'
#!/bin/sh
# udhcpc's own output goes to a log; the result line goes straight to the console.
case "$1" in
    deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
    bound|renew)
        ip addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
        [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
        echo "LP-RESULT dhcp $interface ok ip=$ip mask=$mask router=${router%% *} dns=$(echo $dns | tr ' ' ',') lease=$lease server=$serverid domain=$domain hostname=$hostname" >/dev/console
        ;;
esac
EOF
    chmod 755 /tmp/udhcpc.sh
    udhcpc -i eth0 -s /tmp/udhcpc.sh -q -f -n -t 20 -T 2 ${lp_hostname:+-x hostname:$lp_hostname} >/tmp/udhcpc.log 2>&1 ||
        { echo "LP-RESULT dhcp eth0 fail"; sed 's/^/udhcpc: /' /tmp/udhcpc.log; fail dhcp; }
fi

# Ping each target: one probe at a time until the first answer (the peer may still be booting),
# then a short burst whose loss and average round trip are reported.
for target in $(echo "$lp_ping" | tr ',' ' '); do
    tries=0
    until ping -c 1 -W 1 "$target" >/dev/null 2>&1; do
        tries=$((tries + 1))
        before_deadline || break
    done
    out=$(ping -c 3 -i 0.2 -W 2 "$target" 2>&1)
    received=$(echo "$out" | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
    rtt=$(echo "$out" | sed -n 's#.*min/avg/max = [0-9.]*/\([0-9.]*\)/.*#\1#p')
    if [ "${received:-0}" -gt 0 ]; then
        echo "LP-RESULT ping $target ok rtt_ms=$rtt received=$received/3 retries=$tries"
    else
        echo "LP-RESULT ping $target fail retries=$tries"
        fail "ping-$target"
    fi
done

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

finish
