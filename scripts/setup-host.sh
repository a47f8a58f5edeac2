#!/bin/sh
# Install what the hardnir lab needs on a Debian 12 machine (run as root). Idempotent: apt-get update and
# apt-get install run only when a package is missing.
#
#   debootstrap, debian-archive-keyring   build the lab image (once; cached in /var/cache/hardnir)
#   systemd-container                     systemd-nspawn boots the hosts
#   iproute2                              bridge, network namespaces, veth pairs
#   util-linux, mount                     nsenter (lab_exec), mount/umount (overlays)
#   openssh-client                        ssh-keygen (host keys, lab key) and ssh (tests)
#   openssl                               the lab CA and the etcd certificates
#   chromium                              headless browser for the HTML report test
set -eu

packages="debootstrap debian-archive-keyring systemd-container iproute2 util-linux mount openssh-client openssl chromium"

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-host.sh: needs root" >&2
    exit 1
fi

missing=""
for package in $packages; do
    state=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
    [ "$state" = installed ] || missing="$missing $package"
done

if [ -n "$missing" ]; then
    echo "setup-host.sh: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    # shellcheck disable=SC2086 # one word per package
    apt-get install -y --no-install-recommends $missing
else
    echo "setup-host.sh: all packages present ($packages)" >&2
fi

# The hosts run on overlayfs.
if ! grep -qw overlay /proc/filesystems; then
    modprobe overlay 2>/dev/null || { echo "setup-host.sh: the kernel has no overlayfs" >&2; exit 1; }
fi
