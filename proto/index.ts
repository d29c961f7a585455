/**
 * The wire contract as TypeScript: loads the compiled descriptor of proto/headroom/v1 once and exports the
 * typed service constructors and message types that the coordinator, the agent and headroomctl share.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType as AdminProto } from './generated/admin';
import type { ProtoGrpcType as AgentProto } from './generated/agent';
import type { ProtoGrpcType as PkiProto } from './generated/pki';
import type { ProtoGrpcType as TokenProto } from './generated/token';
// Written by proto/generate.js at build time; bundled into the agent's single executable.
import descriptor = require('./generated/descriptor.json');

/** How every side decodes messages: numbers for 64-bit fields (ms timestamps fit), enum names, defaults filled. */
export const LOADER_OPTIONS: protoLoader.Options = {
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

export const packageDefinition: protoLoader.PackageDefinition = protoLoader.fromJSON(
  descriptor as unknown as Parameters<typeof protoLoader.fromJSON>[0],
  LOADER_OPTIONS,
);

type HeadroomV1 = AdminProto['headroom']['v1'] &
  AgentProto['headroom']['v1'] &
  PkiProto['headroom']['v1'] &
  TokenProto['headroom']['v1'];

/** The loaded `headroom.v1` package: service constructors for clients, `.service` definitions for servers. */
export const headroomV1 = (grpc.loadPackageDefinition(packageDefinition) as unknown as { headroom: { v1: HeadroomV1 } })
  .headroom.v1;

export type * as v1 from './generated/headroom/v1';
