#!/bin/sh
# Builds the cuerator binary that the container image ships: statically
# linked (no cgo: the distroless image has no libc), without local paths
# (-trimpath) and without symbol tables or DWARF (-s -w). The Dockerfile and
# the e2e test TestOperator/StaticBinary both run this script, so the test
# checks exactly what the image contains. GOOS and GOARCH pass through;
# VERSION is what `cuerator version` prints (default: dev).
#
# Usage: [VERSION=v0.1.0] hack/build-static.sh OUTPUT
set -eu
if [ $# -ne 1 ]; then
	echo "usage: $0 OUTPUT" >&2
	exit 2
fi
case $1 in
/*) out=$1 ;;
*) out=$PWD/$1 ;;
esac
cd "$(dirname "$0")/.."
CGO_ENABLED=0 exec go build -trimpath -ldflags="-s -w -X main.version=${VERSION:-dev}" -o "$out" ./cmd/cuerator
