/** AdminService calls the tests share. */
import type { Clients } from '../../common/client/connection';
import type { BackupVerification__Output } from '../../proto/generated/headroom/v1';

/** Every verification VerifyBackups streams for `request`, once the stream ends. */
export function verifyAll(clients: Clients, request: object): Promise<BackupVerification__Output[]> {
  return new Promise((resolve, reject) => {
    const out: BackupVerification__Output[] = [];
    const call = clients.admin.VerifyBackups(request);
    call.on('data', (v: BackupVerification__Output) => out.push(v));
    call.on('error', reject);
    call.on('end', () => resolve(out));
  });
}
