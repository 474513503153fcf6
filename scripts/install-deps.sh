#!/bin/sh
# Installs what lanparty's tests need from Debian's packages (root only), then the npm packages,
# builds the TypeScript and the optional native addon. Safe to run again: it skips what is there.
set -eu
cd "$(dirname "$0")/.."
PKGS="qemu-system-x86 qemu-utils linux-image-amd64 busybox-static iperf3 iputils-ping iproute2 tshark tcpdump socat vde2 dnsmasq isc-dhcp-client cpio xz-utils kmod g++ make python3 chromium libvirt-clients libxml2-utils nftables openvswitch-switch wireguard-go wireguard-tools util-linux"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=""
  for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    echo "deps: installing with apt-get:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # tshark asks whether non-root users may capture; answer no.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    # Tests start the daemons they need (ovs-vswitchd, dnsmasq) in their own namespaces; keep
    # apt from starting system-wide services, as Debian's container images do.
    made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
    fi
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
  fi
else
  echo "deps: not root (or no apt-get): skipping Debian packages; tests that need them will say so"
fi
echo "deps: npm ci"
# --ignore-scripts: lanparty's own install script (node-gyp-build) would compile the addon here;
# build-native.sh below does that and says why when it cannot.
npm ci --no-audit --no-fund --loglevel=error --ignore-scripts
echo "deps: building TypeScript"
npm run -s build
sh scripts/build-native.sh
