#!/usr/bin/env bash
# Runs the end-to-end suite against a kind cluster (a workstation with Docker and kind).
# `cargo xtask e2e` installs deploy/ into it and runs every scenario, each operator as its
# own ServiceAccount. Without Docker, `cargo xtask e2e --local` uses ../shared/realcp.
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=payments-e2e
kind get clusters | grep -qx "$cluster" || kind create cluster --config e2e/kind.yaml --wait 120s
export KUBECONFIG
KUBECONFIG=$(mktemp)
kind get kubeconfig --name "$cluster" > "$KUBECONFIG"
E2E_CLUSTER=1 cargo xtask e2e
if [ "${KEEP_CLUSTER:-0}" != 1 ]; then kind delete cluster --name "$cluster"; fi
