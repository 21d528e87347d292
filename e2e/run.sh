#!/usr/bin/env bash
# Runs the end-to-end suite against a kind cluster (a workstation with Docker and kind).
# The operator images `cargo xtask images` builds are loaded into the nodes, so deploy/'s
# Deployments (which `cargo xtask e2e` installs unchanged) run them as pods; the suite then
# runs every scenario, each operator as its own ServiceAccount, and the installed operators
# must be Available. Without Docker, `cargo xtask e2e --local` uses ../shared/realcp (no
# container runtime there: the operators run from their unpacked images instead).
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=payments-e2e
kind get clusters | grep -qx "$cluster" || kind create cluster --config e2e/kind.yaml --wait 120s
export KUBECONFIG
KUBECONFIG=$(mktemp)
kind get kubeconfig --name "$cluster" > "$KUBECONFIG"
cargo xtask images
for archive in target/images/*.tar; do
  kind load image-archive "$archive" --name "$cluster"
done
E2E_CLUSTER=1 cargo xtask e2e
# The operators deploy/ installed (each Deployment labelled component=controller).
kubectl wait --for=condition=Available deployment --all-namespaces -l component=controller --timeout=180s
if [ "${KEEP_CLUSTER:-0}" != 1 ]; then kind delete cluster --name "$cluster"; fi
