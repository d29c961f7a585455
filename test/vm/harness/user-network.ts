/**
 * The guests' only network: QEMU user-mode networking with `restrict=on` (no route out of the guest)
 * and one guestfwd per host port, so that 10.0.2.100:PORT in the guest is 127.0.0.1:PORT on the host and
 * nothing else is reachable. Each connection the guest opens runs `busybox nc 127.0.0.1 PORT` on the host.
 */
import { BUSYBOX } from './cpio';

/** The host as the guest reaches it (an address that exists only inside QEMU's user network). */
export const HOST_IN_GUEST = '10.0.2.100';

/** The `-netdev` value: user networking, restricted, forwarding each of `hostPorts` to loopback. */
export function userNetdev(id: string, hostPorts: readonly number[]): string {
  const forwards = hostPorts.map((p) => `,guestfwd=tcp:${HOST_IN_GUEST}:${p}-cmd:${BUSYBOX} nc 127.0.0.1 ${p}`);
  return `user,id=${id},restrict=on${forwards.join('')}`;
}
