#!/bin/sh
# Head-of-line blocking on a unixgram port: guest C pings guest D (lpping, one 64-byte frame in
# flight, 1 ms apart) alone, then while guest A floods a slow guest B (lpgen, 1514 B, unpaced; B
# reads about 12k frames/s). Run once with LANPARTY_UNIX_FLOW_CONTROL=0 and once with =1:
#   sh bench/tools/hol-unixgram.sh        (after npm run bench, which builds lpgen and lpping)
# Everything is unix sockets in a temp dir; nothing leaves the host. Prints one line per ping run.
set -u
cd "$(dirname "$0")/../.."
G=bench/tools/build/lpgen
P=bench/tools/build/lpping
[ -x "$G" ] && [ -x "$P" ] || { echo "hol-unixgram: build the tools first: sh bench/tools/build.sh" >&2; exit 1; }
run() {
  D=$(mktemp -d)
  LANPARTY_UNIX_FLOW_CONTROL=$1 node dist/src/cli/main.js up --no-dhcp --control "$D/ctl.sock" --lease-file "$D/leases" \
    --port "unixgram://$D/lp.sock?peer=$D/d.sock" > "$D/lp.out" 2>&1 &
  LP=$!
  trap 'kill $LP $PB $PE 2>/dev/null; rm -rf "$D"' EXIT INT TERM
  sleep 2
  python3 - "$D" <<'PY' &
import socket, sys, time
d = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(d + '/b.sock')
s.sendto(bytes.fromhex('ffffffffffff02000000000b88b5') + bytes(50), d + '/lp.sock')  # learn B's MAC
s.settimeout(0.5)
n, end = 0, time.time() + 15
while time.time() < end:
    try:
        s.recv(70000)
    except socket.timeout:
        continue
    n += 1
    if n % 20 == 0:
        time.sleep(0.001)  # a slow reader
PY
  PB=$!
  $P echo "unix:$D/d.sock" > /dev/null 2>&1 &
  PE=$!
  sleep 0.5
  alone=$($P ping "unix:$D/lp.sock" --bind "unix:$D/c1.sock" --dst 02:00:00:00:00:0d --interval-us 1000 --count 2000 --warmup 200 --timeout-ms 100)
  $G send "unix:$D/lp.sock" --bind "unix:$D/a.sock" --dst 02:00:00:00:00:0b --size 1514 --count 150000 > "$D/a.out" &
  PA=$!
  sleep 0.3
  flood=$($P ping "unix:$D/lp.sock" --bind "unix:$D/c2.sock" --dst 02:00:00:00:00:0d --interval-us 1000 --count 2000 --warmup 200 --timeout-ms 100)
  wait $PA
  echo "flow control $1: C->D alone $alone"
  echo "flow control $1: C->D while A floods B $flood"
  echo "flow control $1: A $(cat "$D/a.out")"
  kill $PB $PE 2>/dev/null
  kill -INT $LP; wait $LP 2>/dev/null
  rm -rf "$D"
  trap - EXIT INT TERM
}
run 0
run 1
