#!/usr/bin/env bash
# The demo behind `make demo`: the local cluster (unless KUBECONFIG names
# one), the CRDs, the operator in the background, and the examples applied.
# `examples/demo.sh stop` (make demo-stop) undoes it.
set -euo pipefail
cd "$(dirname "$0")/.."

state=.cluster
pidfile=$state/operator.pid
mkdir -p "$state"

stop_operator() {
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")" && echo "operator stopped"
  fi
  rm -f "$pidfile"
}

if [ "${1:-}" = stop ]; then
  stop_operator
  if [ -z "${KUBECONFIG:-}" ]; then make --no-print-directory cluster-down; fi
  exit 0
fi

if [ -z "${KUBECONFIG:-}" ]; then
  make --no-print-directory cluster-up
  export KUBECONFIG=$PWD/$state/kubeconfig
fi
echo "== cluster: $(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"

make --no-print-directory install
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null

stop_operator
bin/cuerator run --metrics-bind-address=127.0.0.1:8080 --health-probe-bind-address=127.0.0.1:8081 \
  >"$state/operator.log" 2>&1 &
echo $! >"$pidfile"
for _ in $(seq 60); do
  curl -fsS http://127.0.0.1:8081/readyz >/dev/null 2>&1 && break
  sleep 0.5
done
echo "== operator running (pid $(cat "$pidfile")), log in $state/operator.log"

kubectl apply -f examples/
kubectl wait --for=condition=Ready memcacheds,webapps,databases --all --timeout=180s
kubectl get memcacheds,webapps,databases
# The demo cluster runs neither the Prometheus Operator nor ECK: the
# Monitoring and the SearchCluster say which kind is not served.
kubectl get monitorings,searchclusters
kubectl get deployments,statefulsets,services,ingresses,cronjobs,pvc,pods

cat <<MSG

Look further:
  export KUBECONFIG=$KUBECONFIG
  kubectl describe memcached memcached-sample
  kubectl patch memcached memcached-sample --type=merge -p '{"spec":{"size":5}}'
  kubectl get memcached memcached-sample -o jsonpath='{.status.nodes}'
  kubectl get webapp my-webapp -o jsonpath='{.status.url}'
  kubectl get database my-db -o jsonpath='{.status.endpoint}'
  kubectl get monitoring prometheus -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}'
  bin/cuerator render -f examples/memcached-sample.yaml
Stop it all:
  make demo-stop
MSG
