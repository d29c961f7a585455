/**
 * The guest's /init (PID 1 of the busybox initramfs): mounts the kernel's filesystems (cgroup2 too), loads the virtio
 * modules, brings up eth0 on QEMU's user network, mounts the disks the guest was given, starts the agent
 * when the guest has an agent.yaml, and serves the command channel. Progress goes to the serial console
 * as `hr-guest: ...` lines, which the harness waits on.
 */

/** The line the console shows once the guest is up and its command channel is served. */
export const READY_MARKER = 'hr-guest: ready';

/** Where /init reads the guest's settings (shell assignments, written by guest-overlay.ts). */
export const GUEST_ENV_PATH = '/etc/hr/guest.env';

/** The virtio-serial port's name for the command channel (command-channel.ts speaks its protocol). */
export const COMMAND_PORT_NAME = 'hr.cmd';

/** The agent's configuration in the guest; /init starts `headroom-agent run` when it exists. */
export const GUEST_AGENT_CONFIG = '/etc/headroom/agent.yaml';

/** The guest's address on QEMU's user network (the host is reached only through guestfwd). */
export const GUEST_ADDRESS = '10.0.2.15/24';

export const INIT_SCRIPT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root
say() { echo "hr-guest: $*"; }
# A guest that cannot do what it was asked stops at once: the harness sees it gone and shows this console.
fail() { say "failed: $*"; poweroff -f; }
mkdir -p /proc /sys /dev /tmp /run /root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
# As systemd does: the agent holds backups to their budgets with cgroup v2 where it is mounted.
mount -t cgroup2 cgroup2 /sys/fs/cgroup || say "no cgroup2"
say init
HR_MOUNTS=
. ${GUEST_ENV_PATH}
# The cloud kernel has virtio as modules; modprobe resolves their dependencies from modules.dep.
for m in virtio_pci virtio_net virtio_blk virtio_console; do modprobe $m || fail "modprobe $m"; done
ip link set lo up
ip link set eth0 up && ip addr add ${GUEST_ADDRESS} dev eth0 || fail "eth0"
# HR_MOUNTS: "vda:/mnt/data vdb:/srv" (device:mount point).
for m in $HR_MOUNTS; do
  mkdir -p "\${m#*:}"
  mount -t ext4 "/dev/\${m%%:*}" "\${m#*:}" || fail "mount $m"
done
if [ -f ${GUEST_AGENT_CONFIG} ]; then
  headroom-agent run --config ${GUEST_AGENT_CONFIG} </dev/null &
  say "agent started"
fi
# The command channel: one request per line, "ID BASE64(shell text)"; the answer is "hr-begin ID", the
# output (stdout and stderr) in base64, then "hr-end ID EXIT-CODE". A virtio port opens once, read and
# write; reads see end of file while the host side is not connected, so the loop opens it again.
serve() {
  while read -r id text; do
    echo "$text" | base64 -d > /tmp/hr-cmd.sh
    sh /tmp/hr-cmd.sh > /tmp/hr-cmd.out 2>&1 </dev/null
    rc=$?
    echo "hr-begin $id"
    base64 /tmp/hr-cmd.out
    echo "hr-end $id $rc"
  done
}
port=
for p in /sys/class/virtio-ports/*; do
  [ "$(cat "$p/name" 2>/dev/null)" = ${COMMAND_PORT_NAME} ] && port=/dev/\${p##*/}
done
[ -n "$port" ] || fail "no virtio port named ${COMMAND_PORT_NAME}"
( while :; do serve <>"$port" >&0; sleep 0.2; done ) &
say ready
while :; do sleep 3600; done
`;
