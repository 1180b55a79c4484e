#!/usr/bin/env bash
# Builds the local control plane into $1 (default: <repo>/bin/cluster).
# A binary is rebuilt only when it is missing or when this module's pins
# (go.mod, go.sum, this script) changed since it was built.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$(cd "$here/../.." && pwd)/bin/cluster}
mkdir -p "$out"

kube_version=v1.37.2
stamp=$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)

if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" != "$stamp" ]; then
  echo "cluster tools: pins changed, rebuilding"
  rm -rf "$out"
  mkdir -p "$out"
fi

ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=${kube_version} \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=37 \
 -X k8s.io/component-base/version.gitCommit=0000000000000000000000000000000000000000 \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/component-base/version.buildDate=2026-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitVersion=${kube_version} \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=37"

build() { # name package
  if [ -x "$out/$1" ]; then return; fi
  echo "cluster tools: building $1 (first build takes several minutes)"
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$1.tmp" "$2")
  mv "$out/$1.tmp" "$out/$1"
}

build etcd ./etcd
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
build kwok sigs.k8s.io/kwok/cmd/kwok

# kwok's stages ship inside its module; copy the ones the cluster uses.
# node/heartbeat refreshes the node's status every 20-45 s; the
# heartbeat-with-lease stage refreshes it every 10+ minutes and leaves the
# node to its Lease, which let it go NotReady under load and its pods with it.
kwok_dir=$(cd "$here" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
mkdir -p "$out/kwok-stages"
for d in node/fast node/heartbeat pod/fast volume/fast; do
  for f in "$kwok_dir/kustomize/stage/$d"/*.yaml; do
    case "$(basename "$f")" in kustomization.yaml) continue ;; esac
    install -m 0644 "$f" "$out/kwok-stages/"
  done
done
echo "$stamp" > "$out/.stamp"
echo "cluster tools: ready in $out"
