#!/bin/sh
# Build the hardnir lab root filesystem: Debian bookworm (minbase) dressed up as CoreOS Container Linux where the
# hardening controls look (see docs: design.md "The lab").  Called by hardnir.lab.image, which builds into a
# temporary directory and renames it only when this script succeeded.
#
#   build-image.sh ROOTFS IMAGE_FILES_DIR [DEB_CACHE_DIR]
#
# ROOTFS must not exist yet.  IMAGE_FILES_DIR/rootfs is copied over the debootstrapped tree.  DEB_CACHE_DIR keeps
# the downloaded .deb files between builds.  HARDNIR_DEBIAN_MIRROR overrides the mirror.
# The image carries no host keys, no machine id and no Python.
set -eu

rootfs=$1
files=$2
debs=${3:-}
mirror=${HARDNIR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
packages=systemd,systemd-sysv,dbus,openssh-server,sudo,libnss-cache,etcd-server,etcd-client,curl,iproute2,openssl
packages=$packages,ca-certificates,procps,passwd

export LC_ALL=C
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

log() { printf 'build-image: %s\n' "$*" >&2; }
in_root() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C chroot "$rootfs" "$@"; }

[ ! -e "$rootfs" ] || { log "$rootfs already exists"; exit 1; }
[ -d "$files/rootfs" ] || { log "$files/rootfs: no such directory"; exit 1; }

log "debootstrap $suite (minbase) from $mirror"
if [ -n "$debs" ]; then
    mkdir -p "$debs"
    debootstrap --variant=minbase --include="$packages" --cache-dir="$debs" "$suite" "$rootfs" "$mirror" >&2
else
    debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >&2
fi

cd "$rootfs"

log "removing host keys, machine id, package caches"
rm -f etc/ssh/ssh_host_*
: > etc/machine-id
rm -f var/lib/dbus/machine-id
ln -s /etc/machine-id var/lib/dbus/machine-id
rm -f var/cache/apt/archives/*.deb var/cache/apt/*.bin
find var/lib/apt/lists -mindepth 1 -maxdepth 1 -type f -delete

log "switching Debian's own ssh and etcd units off"
rm -f etc/systemd/system/sshd.service etc/systemd/system/etcd2.service
rm -f etc/systemd/system/multi-user.target.wants/ssh.service \
      etc/systemd/system/multi-user.target.wants/etcd.service \
      etc/systemd/system/multi-user.target.wants/e2scrub_reap.service \
      etc/systemd/system/sysinit.target.wants/systemd-pstore.service
rm -rf etc/systemd/system/timers.target.wants etc/systemd/system/getty.target.wants
for unit in ssh.service ssh.socket ssh@.service rescue-ssh.target etcd.service console-getty.service; do
    ln -sfn /dev/null "etc/systemd/system/$unit"
done

log "users and groups (before nsswitch.conf names the second group database)"
in_root groupadd -g 1010 wheel
in_root groupadd -g 233 docker
in_root groupadd -g 251 rkt
in_root groupadd -r rkt-admin
in_root usermod -a -G wheel root
in_root groupadd -g 500 core
in_root useradd -u 500 -g core -G wheel,docker,rkt -m -s /bin/bash -c "CoreOS Admin" -p '*' core
in_root groupadd -g 1001 ops
in_root useradd -u 1001 -g ops -m -s /bin/bash -c "Second admin" -p '*' ops
for u in core ops; do
    install -d -m 0700 -o "$(in_root id -u "$u")" -g "$(in_root id -g "$u")" "home/$u/.ssh"
done

log "installing the CoreOS look-alike files"
# These are symlinks in Debian; the lab wants regular files (os-release) or CoreOS's own links (below).
rm -f etc/os-release etc/nsswitch.conf etc/sudo.conf
(cd "$files/rootfs" && find . -type d) | while read -r d; do mkdir -p "$d"; done
(cd "$files/rootfs" && find . -type f) | while read -r f; do
    if [ -x "$files/rootfs/$f" ]; then mode=0755; else mode=0644; fi
    install -m "$mode" -o root -g root "$files/rootfs/$f" "$f"
done
chmod 0440 usr/share/baselayout/sudoers etc/sudoers.d/ops
ln -sfn ../usr/share/baselayout/nsswitch.conf etc/nsswitch.conf
ln -sfn ../usr/share/baselayout/sudo.conf etc/sudo.conf
# The second, read-only group database: libnss-cache reads /etc/group.cache, which points into /usr.
ln -sfn ../usr/share/baselayout/group etc/group.cache

log "enabling units the CoreOS way"
mkdir -p usr/lib/systemd/system/sockets.target.wants usr/lib/systemd/system/multi-user.target.wants \
         etc/systemd/system/multi-user.target.wants
ln -sfn ../sshd.socket usr/lib/systemd/system/sockets.target.wants/sshd.socket
ln -sfn ../docker.socket usr/lib/systemd/system/sockets.target.wants/docker.socket
ln -sfn ../locksmithd.service usr/lib/systemd/system/multi-user.target.wants/locksmithd.service
ln -sfn /usr/lib/systemd/system/etcd2.service etc/systemd/system/multi-user.target.wants/etcd2.service
ln -sfn /usr/lib/systemd/system/fleet.service etc/systemd/system/multi-user.target.wants/fleet.service

in_root install -d -m 0700 -o etcd -g etcd /var/lib/etcd2
install -d -m 0755 etc/ssl/etcd usr/share/oem

log "checks"
grep -q '^ID=coreos$' etc/os-release
grep -qx 'wheel:x:1010:root,core' etc/group
grep -qx 'docker:x:233:core' etc/group
grep -qx 'rkt:x:251:core' etc/group
# The trap: with core gone from /etc/group, glibc's initgroups() still finds wheel and docker in the second db.
cp etc/group etc/group.check
sed -i -e 's/^\(wheel:.*\),core$/\1/' -e 's/^docker:x:233:core$/docker:x:233:/' etc/group
in_root id -nG core | tr ' ' '\n' | grep -qx wheel
in_root id -nG core | tr ' ' '\n' | grep -qx docker
mv etc/group.check etc/group
in_root id etcd >/dev/null
test -x usr/bin/etcd && test -x usr/bin/etcdctl && test -x usr/bin/curl && test -x usr/bin/openssl
if ls etc/ssh/ssh_host_* >/dev/null 2>&1; then log "host keys left in the image"; exit 1; fi
if ls usr/bin/python* >/dev/null 2>&1; then log "python found in the image"; exit 1; fi

# systemd runs the ConditionNeedsUpdate= units (sysusers, ldconfig, hwdb, ...) when /usr is newer than
# /etc/.updated and /var/.updated. Mark the image as up to date so boots are quick and sysusers leaves
# /etc/group alone (hosts seeded with core removed from rkt stay that way until someone runs systemd-sysusers).
touch usr
stamp=$(( $(stat -c %Y usr) + 1 ))
for d in etc var; do
    printf '# Written by hardnir build-image.sh (like systemd-update-done).\nTIMESTAMP_NSEC=%s000000000\n' \
        "$stamp" > "$d/.updated"
    touch -d "@$stamp" "$d/.updated"
done
log "done"
