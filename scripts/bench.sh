#!/bin/sh
# npm run bench [-- OPTIONS]       full benchmark, writes bench/RESULTS.md (about 15-20 minutes)
# npm run bench:smoke              short version for CI: udp and tcp, no guests, prints only
# Options (bench/run.ts): --smoke, --no-guests, --only rate,latency,memory,guests,links, --out FILE,
#   --transports udp,unixgram,tcp,unix,mcast  --sizes 64,1514,9000  --relays none,socat,vde,lanparty
#   --links link-udp,link-vxlan,link-wg  --link-sizes 64,1514
# Environment: LP_BENCH_TRIAL_MS, LP_BENCH_REPEATS, LP_BENCH_IPERF_SECONDS, LP_BENCH_GUESTS=0.
#
# Builds lanparty (tsc), its native addon, and the C tools (lpgen, lpping), then runs
# bench/run.ts inside a new network namespace (`unshare --net`): only lo exists there, with a
# multicast route on it, so no frame can leave the machine, and the kernel removes the namespace
# and every socket in it when the run ends, even on Ctrl-C. Needs root (namespaces, guests).
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "bench: needs root for a network namespace (unshare --net) and QEMU guests; run as root" >&2
  exit 1
fi
for cmd in socat vde_switch vde_plug unshare cc; do
  command -v "$cmd" >/dev/null || { echo "bench: $cmd not found; run sh scripts/install-deps.sh (socat, vde2, vdeplug, build-essential)" >&2; exit 1; }
done
# Type errors elsewhere in the tree (work in progress) do not stop the run: tsc still emits.
npx tsc -p . || echo "bench: tsc reported type errors (above); running the JavaScript it emitted" >&2
[ -f native/build/Release/lanparty_native.node ] || sh scripts/build-native.sh
sh bench/tools/build.sh >/dev/null
command="npm run bench"
case " $* " in *" --smoke "*) command="npm run bench:smoke" ;; esac
export LP_BENCH_IN_NETNS=1 LP_BENCH_COMMAND="${LP_BENCH_COMMAND:-$command${*:+ -- $*}}"
exec unshare --net -- sh -c 'ip link set lo up && ip route add 224.0.0.0/4 dev lo && exec node dist/bench/run.js "$@"' bench "$@"
