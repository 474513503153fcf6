#!/bin/sh
# Builds the QEMU test guest used by test/netns/*.netns.test.ts, from Debian packages only:
#
#   1. resolve versions   linux-image-amd64 -> linux-image-<abi>-amd64, busybox-static, iperf3
#   2. cache check        key = package versions + hash of scripts/guest-init.sh and this script
#   3. download           apt-get download into the cache (kept, so a changed init never refetches)
#   4. kernel             dpkg-deb -x; vmlinuz plus the virtio-net-over-PCI modules, decompressed
#                         (busybox insmod can't read .ko.xz), in dependency order (modinfo depends)
#   5. userland           busybox-static; iperf3 with the libraries ldd finds and the dynamic loader
#   6. initramfs          newc cpio, gzip, /init = scripts/guest-init.sh
#
# Output: $LANPARTY_CACHE/guest/<key>/{vmlinuz,initrd.gz} (default cache ~/.cache/lanparty), and
# $LANPARTY_CACHE/guest/current -> <key>. The last line on stdout is "guest: ready <dir>".
# A second run with nothing changed reads no package index (it remembers the versions resolved
# for the current apt lists) and finishes in well under a second.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
init_script="$here/guest-init.sh"
cache=${LANPARTY_CACHE:-$HOME/.cache/lanparty}/guest
mkdir -p "$cache/debs"

say() { echo "guest: $*"; }

# Step 1. Resolving candidates with apt-cache costs about half a second, so remember the answer
# for as long as the package index files are unchanged.
apt_stamp=$(stat -c '%Y' /var/cache/apt/pkgcache.bin /var/lib/apt/lists 2>/dev/null | tr '\n' '-')
versions_file="$cache/versions.$(printf '%s' "$apt_stamp" | sha256sum | cut -c1-16)"
if [ ! -s "$versions_file" ]; then
    say "resolving package versions"
    apt-cache show --no-all-versions linux-image-amd64 busybox-static iperf3 >"$cache/show.tmp"
    kpkg=$(awk '/^Package: linux-image-amd64$/{p=1} p && /^Depends:/{sub(/^Depends: */,""); sub(/[ ,(].*/,""); print; exit}' "$cache/show.tmp")
    [ -n "$kpkg" ] || { echo "guest: cannot tell which kernel linux-image-amd64 depends on" >&2; exit 1; }
    kver=$(apt-cache show --no-all-versions "$kpkg" | awk '/^Version:/{print $2; exit}')
    bver=$(awk '/^Package: busybox-static$/{p=1} p && /^Version:/{print $2; exit}' "$cache/show.tmp")
    iver=$(awk '/^Package: iperf3$/{p=1} p && /^Version:/{print $2; exit}' "$cache/show.tmp")
    rm -f "$cache/show.tmp" "$cache"/versions.*
    printf '%s\n' "kernel=$kpkg=$kver" "busybox-static=$bver" "iperf3=$iver" >"$versions_file"
fi

# Step 2.
key=$( { cat "$versions_file"; sha256sum <"$init_script"; sha256sum <"$0"; } | sha256sum | cut -c1-16)
out="$cache/$key"
if [ -s "$out/initrd.gz" ] && [ -s "$out/vmlinuz" ]; then
    ln -sfn "$key" "$cache/current"
    say "cached $(tr '\n' ' ' <"$versions_file")"
    say "ready $out"
    exit 0
fi
say "building $key from $(tr '\n' ' ' <"$versions_file")"
kpkg=$(sed -n 's/^kernel=\([^=]*\)=.*/\1/p' "$versions_file")

# Step 3. apt-get download names files pkg_version_arch.deb (with ':' as %3a).
fetch() { # fetch PACKAGE -> prints the path of its .deb in the cache
    deb=$(ls "$cache/debs/$1"_*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$deb" ]; then
        say "downloading $1" >&2
        (cd "$cache/debs" && apt-get download -q "$1" >/dev/null 2>"$cache/debs/.err" ) ||
            { cat "$cache/debs/.err" >&2; exit 1; }
        deb=$(ls "$cache/debs/$1"_*.deb | head -n1)
    fi
    echo "$deb"
}

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
root="$work/root"
pkgs="$work/pkgs"
mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/lib/modules" \
    "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/run" "$root/etc" "$pkgs"

# Step 4.
say "extracting $kpkg"
dpkg-deb -x "$(fetch "$kpkg")" "$work/kernel"
kdir=$(ls -d "$work/kernel/lib/modules/"*/ | head -n1)
cp "$work/kernel/boot/"vmlinuz-* "$work/vmlinuz"
load_order="$root/lib/modules/load-order"
: >"$load_order"
modpath() { # module name -> path of its file under $kdir, .ko or .ko.xz, '-' and '_' alike
    local pat
    pat=$(echo "$1" | sed 's/[-_]/[-_]/g')
    grep -E "/$pat\.ko(\.xz)?\$" "$kdir/modules.order" | head -n1
}
add_module() { # adds a module after everything it depends on
    local p f dep  # recursive: without local, a dependency's path would overwrite ours
    grep -qx "$1" "$load_order" && return 0
    p=$(modpath "$1")
    if [ -z "$p" ]; then
        # Not in modules.order: built in (modules.builtin) or absent.
        if grep -qE "/$(echo "$1" | sed 's/[-_]/[-_]/g')\.ko\$" "$kdir/modules.builtin"; then return 0; fi
        echo "guest: module $1 is neither built into nor shipped with $kpkg" >&2; exit 1
    fi
    f="$kdir/$p"; [ -f "$f" ] || f="$f.xz"
    for dep in $(modinfo -F depends "$f" | tr ',' ' '); do add_module "$dep"; done
    case "$f" in
        *.xz) xz -dc "$f" >"$root/lib/modules/$1.ko" ;;
        *) cp "$f" "$root/lib/modules/$1.ko" ;;
    esac
    echo "$1" >>"$load_order"
}
for m in virtio_pci virtio_net; do add_module "$m"; done
say "modules: $(tr '\n' ' ' <"$load_order")"

# Step 5. Follow the Depends fields from iperf3 to gather the packages its libraries come from;
# ldd then picks exactly the files needed.
say "extracting busybox-static"
dpkg-deb -x "$(fetch busybox-static)" "$pkgs"
cp "$pkgs/bin/busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
seen=" "
used=""
queue="iperf3"
while [ -n "$queue" ]; do
    set -- $queue; p=$1; shift; queue="$*"
    case "$seen" in *" $p "*) continue ;; esac
    seen="$seen$p "
    case "$p" in debconf|debconf-2.0|adduser|perl-base|dpkg|init-system-helpers) continue ;; esac
    deb=$(fetch "$p")
    used="$used $p"
    dpkg-deb -x "$deb" "$pkgs"
    deps=$(dpkg-deb -f "$deb" Pre-Depends Depends | sed 's/^[A-Za-z-]*: //' | tr ',' '\n' |
        sed 's/|.*//; s/(.*//; s/:any//; s/ //g' | grep -v '^$' || true)
    queue="$queue $deps"
done
say "iperf3 and the packages its libraries may come from:$used"
cp "$pkgs/usr/bin/iperf3" "$root/usr/bin/iperf3"
libpath="$pkgs/lib/x86_64-linux-gnu:$pkgs/usr/lib/x86_64-linux-gnu"
loader=$(readlink -f "$pkgs/lib64/ld-linux-x86-64.so.2")
for lib in $(LD_LIBRARY_PATH="$libpath" "$loader" --list "$pkgs/usr/bin/iperf3" | awk '$2 == "=>" {print $3}'); do
    case "$lib" in
        */ld-linux-*) continue ;;  # the loader itself, copied below
        "$pkgs"/*) ;;
        *) echo "guest: iperf3 needs $lib, which no extracted package provides" >&2; exit 1 ;;
    esac
    dest="$root/${lib#"$pkgs"/}"
    mkdir -p "$(dirname "$dest")"
    cp -L "$lib" "$dest"
done
mkdir -p "$root/lib64"
cp -L "$loader" "$root/lib64/ld-linux-x86-64.so.2"
"$root/lib64/ld-linux-x86-64.so.2" --library-path "$root/lib/x86_64-linux-gnu:$root/usr/lib/x86_64-linux-gnu" \
    "$root/usr/bin/iperf3" --version | head -n1 | sed 's/^/guest: /'

# Step 6.
cp "$init_script" "$root/init"
chmod 755 "$root/init"
say "packing initramfs"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -6 >"$work/initrd.gz"
mkdir -p "$out"
mv "$work/vmlinuz" "$work/initrd.gz" "$out/"
ln -sfn "$key" "$cache/current"
say "initramfs $(du -k "$out/initrd.gz" | cut -f1) KiB, kernel $(du -k "$out/vmlinuz" | cut -f1) KiB"
say "ready $out"
