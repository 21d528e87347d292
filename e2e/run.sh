#!/usr/bin/env bash
# Runs the end-to-end suite against a fresh kind cluster. Needs docker and kind.
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=payments-e2e
kind get clusters | grep -qx "$cluster" || kind create cluster --config e2e/kind.yaml --wait 120s
export KUBECONFIG
KUBECONFIG=$(mktemp)
kind get kubeconfig --name "$cluster" > "$KUBECONFIG"
kubectl apply -k deploy/crds
kubectl apply -k deploy/namespaces
E2E_CLUSTER=1 cargo test -p e2e -- --test-threads=1
if [ "${KEEP_CLUSTER:-0}" != 1 ]; then kind delete cluster --name "$cluster"; fi
