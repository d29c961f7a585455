#!/usr/bin/env python3
"""Takes a Headroom token and gives it back: the smallest client of the wire contract in another language.

Acquire waits in the coordinator's queue (QUEUED updates) until the token is GRANTED or DENIED; a real
backup would run now, renewing the lease before expires_unix_ms, and release with its outcome.
Run with the generated modules on PYTHONPATH (see generate.sh and README.md).
"""
import argparse
import sys
import uuid

import grpc

from headroom.v1 import common_pb2, token_pb2, token_pb2_grpc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", default="127.0.0.1:7400", help="HOST:PORT, plaintext (loopback)")
    parser.add_argument("--host", default="", help="the host the backup runs on (default: the coordinator's own)")
    parser.add_argument("--vm", default="python-example")
    parser.add_argument("--job", default="example")
    parser.add_argument("--kind", choices=["GUEST", "HYPERVISOR"], default="GUEST")
    args = parser.parse_args()

    with grpc.insecure_channel(args.coordinator) as channel:
        tokens = token_pb2_grpc.TokenServiceStub(channel)
        request = token_pb2.AcquireRequest(
            request_id=str(uuid.uuid4()),  # the same id on a retry never yields a second token
            kind=common_pb2.TokenKind.Value("TOKEN_KIND_" + args.kind),
            host=args.host,
            vm=args.vm,
            job=args.job,
            expected_duration_ms=60_000,
        )
        token = None
        for update in tokens.Acquire(request, timeout=600):
            which = update.WhichOneof("update")
            if which == "queued":
                print(f"queued at position {update.queued.position}: {update.queued.waiting_for}", file=sys.stderr)
            elif which == "granted":
                token = update.granted
            elif which == "denied":
                reason = token_pb2.DenyReason.Name(update.denied.reason)
                print(f"denied ({reason}): {update.denied.message}", file=sys.stderr)
                return 1
        if token is None:
            print("the coordinator ended the acquire without a decision", file=sys.stderr)
            return 1
        kind = common_pb2.TokenKind.Name(token.kind)
        print(f"granted {kind} token {token.token_id} (fencing {token.fencing}) on {token.host} for {token.vm}/{token.job}")

        outcome = token_pb2.Outcome(success=True, message="python client example")
        tokens.Release(token_pb2.ReleaseRequest(token_id=token.token_id, fencing=token.fencing, outcome=outcome), timeout=10)
        print(f"released token {token.token_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
