#!/bin/sh
# Generates Headroom's Python client modules from proto/headroom/v1 into OUT (default: ./generated):
# headroom/v1/*_pb2.py (messages) and *_pb2_grpc.py (service stubs). Needs Debian's protobuf-compiler,
# python3-grpc-tools and python3-grpcio.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
proto="$here/../../proto"
out=${1:-$here/generated}
python=${PYTHON:-/usr/bin/python3}

if ! command -v protoc >/dev/null; then
  echo "generate.sh: protoc not found: apt-get install protobuf-compiler" >&2
  exit 1
fi
if ! "$python" -c 'import grpc, grpc_tools' 2>/dev/null; then
  echo "generate.sh: $python cannot import grpc and grpc_tools: apt-get install python3-grpc-tools python3-grpcio" >&2
  exit 1
fi

mkdir -p "$out"
# The messages come from Debian's protoc (3.21): the protoc that grpc_tools bundles (3.5) predates proto3
# `optional` and refuses admin.proto. It also writes the parsed contract for the next step.
protoc -I "$proto" --python_out="$out" --include_imports --descriptor_set_out="$out/headroom.binpb" "$proto"/headroom/v1/*.proto
# The service stubs come from grpc_tools' plugin, fed those parsed descriptors rather than the .proto text.
"$python" -c 'import sys; from grpc_tools import protoc; sys.exit(protoc.main(sys.argv))' \
  --descriptor_set_in="$out/headroom.binpb" --grpc_python_out="$out" \
  headroom/v1/admin.proto headroom/v1/agent.proto headroom/v1/pki.proto headroom/v1/token.proto
rm "$out/headroom.binpb"
