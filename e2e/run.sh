#!/usr/bin/env bash
# Runs the end-to-end suite against a kind cluster (a workstation with Docker and kind).
# The operator images `cargo xtask images` builds are loaded into the nodes, so the
# Deployments of dist/install.yaml (which `cargo xtask e2e` builds with `cargo xtask release`
# and installs unchanged, images pinned by digest) run them as pods, each issuing its own
# webhook certificate; the suite then runs every scenario, each operator as its own
# ServiceAccount, and the installed operators must be Available. Untested here (no
# container engine on the development machine): whether kind's containerd resolves the
# pinned `name:tag@sha256:` references of loaded archives, and the admission scenarios,
# which route webhooks to 127.0.0.1 (the host's loopback is not the kind node's). Without Docker, `cargo xtask e2e --local` uses ../shared/realcp (no
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
