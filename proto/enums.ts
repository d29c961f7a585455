/**
 * Wire enum values ⇄ the names Headroom's own code, its SQLite store and people use. Protobuf scopes enum
 * values to the package, so the .proto files prefix each with its enum (TOKEN_KIND_GUEST); everything past
 * the wire keeps the short name (GUEST). Each side converts here, at its edge, and nowhere else.
 */
import { BackupRunState } from './generated/headroom/v1/BackupRunState';
import { Consistency } from './generated/headroom/v1/Consistency';
import { DenyReason } from './generated/headroom/v1/DenyReason';
import { Enforcement } from './generated/headroom/v1/Enforcement';
import { HistoryEventType } from './generated/headroom/v1/HistoryEventType';
import { QuiesceState } from './generated/headroom/v1/QuiesceState';
import { Role } from './generated/headroom/v1/Role';
import { TokenKind } from './generated/headroom/v1/TokenKind';

/** The short names of an enum whose values all start with P: its values without P, UNSPECIFIED left out. */
type Short<W extends string, P extends string> = W extends `${P}UNSPECIFIED`
  ? never
  : W extends `${P}${infer S}`
    ? S
    : never;

export interface WireEnum<W extends string, S extends string> {
  /** Every short name, in the enum's order. */
  readonly names: readonly S[];
  toWire(name: S): W;
  /** undefined for UNSPECIFIED, and for a value this build does not know (a number, from a newer peer). */
  fromWire(value: unknown): S | undefined;
  /** For people: the short name, or the value as it came when it is not one. */
  show(value: unknown): string;
}

function wireEnum<P extends string, W extends string>(prefix: P, values: Record<string, W>): WireEnum<W, Short<W, P>> {
  type S = Short<W, P>;
  const toShort = new Map<unknown, S>();
  for (const w of Object.values(values)) {
    if (w !== `${prefix}UNSPECIFIED`) toShort.set(w, w.slice(prefix.length) as S);
  }
  const fromWire = (value: unknown) => toShort.get(value);
  return {
    names: [...toShort.values()],
    toWire: (name) => `${prefix}${name}` as W,
    fromWire,
    show: (value) => fromWire(value) ?? String(value),
  };
}

export const tokenKind = wireEnum('TOKEN_KIND_', TokenKind);
export const enforcement = wireEnum('ENFORCEMENT_', Enforcement);
export const quiesceState = wireEnum('QUIESCE_STATE_', QuiesceState);
export const consistency = wireEnum('CONSISTENCY_', Consistency);
export const denyReason = wireEnum('DENY_REASON_', DenyReason);
export const role = wireEnum('ROLE_', Role);
export const historyEventType = wireEnum('HISTORY_EVENT_TYPE_', HistoryEventType);
export const backupRunState = wireEnum('BACKUP_RUN_STATE_', BackupRunState);
