#!/usr/bin/env bash
# Run the example controllers in a local kind cluster.
#
#   scripts/kind-up.sh [website|user|both]      (default: both)
#
# What it does, in order:
#   1. creates a kind cluster named ${KIND_CLUSTER:-kctl-examples} (kept if it already exists);
#   2. builds each controller's image from the repository root (docker build -f
#      examples/<name>_controller/Dockerfile -t <name>-controller:dev .) and loads it into the
#      cluster's nodes with `kind load docker-image` (no registry needed; imagePullPolicy is
#      IfNotPresent);
#   3. applies examples/<name>_controller/manifests with `kubectl apply -k` (CRD, namespace,
#      service account, RBAC, the User controller's admission policy, the 2-replica Deployment);
#   4. waits for the CRD to be established and the Deployment to roll out;
#   5. applies the sample (manifests/sample-website.yaml or sample-users.yaml) and shows the result.
#
# Needs: docker (a running engine), kind, kubectl (1.30+ for the admission policy). Tear down with
#   kind delete cluster --name "${KIND_CLUSTER:-kctl-examples}"
# Environment: KIND_CLUSTER (cluster name), KIND_NODE_IMAGE (e.g. kindest/node:v1.33.1),
# KUBECTL (kubectl binary), DOCKER (docker binary).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cluster="${KIND_CLUSTER:-kctl-examples}"
kubectl="${KUBECTL:-kubectl}"
docker="${DOCKER:-docker}"
which="${1:-both}"

die() { echo "kind-up: $*" >&2; exit 1; }
step() { echo; echo "== $*"; }

case "$which" in
website | user) examples=("$which") ;;
both) examples=(website user) ;;
*) die "usage: $0 [website|user|both]" ;;
esac

for tool in "$docker" kind "$kubectl"; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done
"$docker" info >/dev/null 2>&1 || die "the docker engine is not running ($docker info failed)"

step "kind cluster $cluster"
if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
	echo "reusing existing cluster $cluster"
else
	kind create cluster --name "$cluster" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 120s
fi
ctx="kind-$cluster"
k() { "$kubectl" --context "$ctx" "$@"; }

for name in "${examples[@]}"; do
	dir="$root/examples/${name}_controller"
	image="${name}-controller:dev"

	step "build $image"
	DOCKER_BUILDKIT=1 "$docker" build -f "$dir/Dockerfile" -t "$image" "$root"

	step "load $image into $cluster"
	kind load docker-image "$image" --name "$cluster"

	step "apply $dir/manifests (kustomize)"
	k apply -k "$dir/manifests"
	crd="$(k kustomize "$dir/manifests" 2>/dev/null | awk '/^kind: CustomResourceDefinition/{f=1} f&&/^  name:/{print $2; exit}')"
	k wait --for=condition=Established "crd/$crd" --timeout=60s
	k -n "${name}-system" rollout status "deployment/${name}-controller" --timeout=180s

	step "apply the sample"
	if [ "$name" = website ]; then
		k apply -f "$dir/manifests/sample-website.yaml"
		k wait --for=jsonpath='{.status.observedGeneration}'=1 website/kubia --timeout=60s || true
		k get websites -o wide
		k get deployment,service -l app=website
	else
		k apply -f "$dir/manifests/sample-users.yaml"
		k wait --for=condition=Ready user/tester3 user/sre3 --timeout=60s || true
		k get users -o wide
		k get namespaces -l kiamol=ch20
		k get serviceaccounts,secrets -A -l app.kubernetes.io/managed-by=user-controller
	fi
	step "which replica leads"
	k -n "${name}-system" get lease "${name}-controller" -o jsonpath='{.spec.holderIdentity}{"\n"}'
done

echo
echo "kind-up: done. Logs: kubectl --context $ctx -n <name>-system logs deploy/<name>-controller"
