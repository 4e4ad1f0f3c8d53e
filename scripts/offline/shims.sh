#!/bin/sh
# Puts wrappers in $P/shim for the host tools this machine lacks; each runs the packed
# binary through the packed loader and libraries (scripts/offline/pack.sh).
P=${P:-/opt/coldsnap/tools}; L=$P/lib; LD=$L/ld-linux-x86-64.so.2
mkdir -p "$P/shim"
shim() { name=$1; real=$2; pre=$3
  if command -v "$name" >/dev/null 2>&1; then echo "  $name: $(command -v "$name")"; return; fi
  printf '#!/bin/sh\n%sexec %s --library-path %s --argv0 %s %s/real/%s "$@"\n' \
    "$pre" "$LD" "$L" "$name" "$P" "$real" > "$P/shim/$name"
  chmod +x "$P/shim/$name"; echo "  $name: packed"; }
ipt=${IPTABLES:-xtables-nft-multi}
x="XTABLES_LIBDIR=$P/xtables; export XTABLES_LIBDIR; "
shim ip ip ""
shim iptables "$ipt" "$x"
shim iptables-save "$ipt" "$x"
shim iptables-restore "$ipt" "$x"
shim mkfs.ext4 mke2fs ""
shim losetup losetup ""
shim sysctl sysctl ""
shim nsenter nsenter ""
shim unshare unshare ""
[ -x /usr/bin/tini-static ] || cp "$P/bin/tini-static" /usr/bin/tini-static
