#!/usr/bin/env bash
# Produces examples/loadtest/transcript.txt (shown in docs/examples/loadtest.md) by really running
# kubectl against an API server: the LoadTest controller and its webhooks run locally
# (--dev-webhooks), a rejected, a defaulted and a running LoadTest follow.
#
#   KUBECONFIG=/path/to/kubeconfig KUBECTL=/path/to/kubectl PYTHON=.venv/bin/python \
#     bash examples/loadtest/transcript.sh > examples/loadtest/transcript.txt
#
# Use envtest (python -m kctl_runtime.testing.envtest start): its kube-controller-manager runs the
# real Job controller. Nothing runs Pods there, so the script plays the kubelet for the load
# generator's Pod (it patches the Pod's status) and says so. Run from the repository root.
set -euo pipefail

: "${KUBECONFIG:?set KUBECONFIG}"
KUBECTL=${KUBECTL:-kubectl}
PYTHON=$(command -v "${PYTHON:-python}")
ROOT=$(pwd)
WORK=$(mktemp -d)
NS=shop
export KUBECONFIG

kubectl() { "$KUBECTL" "$@"; }

run() { # print a command line as a user types it, then run it and print its output (stderr too)
  echo "\$ $1"
  eval "$1" 2>&1 || true
  echo
}

note() { echo "# $*"; }

wait_for() { # wait_for DESCRIPTION COMMAND...: poll (quietly) until COMMAND succeeds
  local what=$1
  shift
  for _ in $(seq 1 150); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "timed out waiting for $what" >&2
  exit 1
}

cleanup() {
  [[ -n "${CONTROLLER:-}" ]] && kill "$CONTROLLER" 2>/dev/null && wait "$CONTROLLER" 2>/dev/null
  kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

note "KUBECONFIG: a local control plane (python -m kctl_runtime.testing.envtest start), $("$KUBECTL" version 2>/dev/null | grep -i server | tr -d '\r')"
note "the CRD: kubectl apply -f examples/loadtest/crd.yaml"
kubectl apply -f examples/loadtest/crd.yaml >/dev/null
wait_for "the CRD" kubectl get loadtests -A
note "the controller and its webhooks, with a development certificate (logs in the background):"
echo "\$ python -m examples.loadtest --webhook-cert-dir /tmp/loadtest-certs --dev-webhooks &"
PYTHONPATH="$ROOT" "$PYTHON" -m examples.loadtest --webhook-cert-dir "$WORK/certs" --dev-webhooks \
  --health-bind off --metrics-bind off >"$WORK/controller.log" 2>&1 &
CONTROLLER=$!
wait_for "the webhook configurations" kubectl get validatingwebhookconfiguration loadtest-validation
echo
run "kubectl get validatingwebhookconfigurations,mutatingwebhookconfigurations"
cd "$WORK"
kubectl create namespace "$NS" >/dev/null
kubectl -n "$NS" create service clusterip frontend --tcp=80:8080 >/dev/null

cat >broken.yaml <<'EOF'
apiVersion: beta.kuar.com/v1
kind: LoadTest
metadata:
  name: broken
spec:
  service: Frontend_Service
  scheme: ftp
  requestsPerSecond: 50000
  paths: [index.html]
EOF
cat >homepage.yaml <<'EOF'
apiVersion: beta.kuar.com/v1
kind: LoadTest
metadata:
  name: homepage
spec:
  service: frontend
  requestsPerSecond: 100
  durationSeconds: 30
  paths: [/, /about]
EOF

note "1. rejected: the validating webhook names every problem"
run "cat broken.yaml"
# kube-apiserver picks new webhook configurations up within a moment: wait until it calls ours
wait_for "the validating webhook" bash -c "! \"$KUBECTL\" -n $NS apply --dry-run=server -f broken.yaml"
run "kubectl -n shop apply -f broken.yaml"

note "2. defaulted: no scheme given, the mutating webhook sets http"
run "cat homepage.yaml"
wait_for "the mutating webhook" bash -c "[ \"\$(\"$KUBECTL\" -n $NS apply --dry-run=server -f homepage.yaml -o jsonpath='{.spec.scheme}')\" = http ]"
run "kubectl -n shop apply -f homepage.yaml"
run "kubectl -n shop get loadtest homepage -o jsonpath='{.spec.scheme}{\"\n\"}'"

note "3. running: the controller created a Job owned by the LoadTest; the Job controller its Pod"
wait_for "the Job" kubectl -n "$NS" get job homepage-loadtest
wait_for "the Pod" bash -c "\"$KUBECTL\" -n $NS get pods -l batch.kubernetes.io/job-name=homepage-loadtest -o name | grep -q pod"
run "kubectl -n shop get loadtests"
run "kubectl -n shop get jobs -o wide"
run "kubectl -n shop get pods"
run "kubectl -n shop get job homepage-loadtest -o jsonpath='{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} controller={.metadata.ownerReferences[0].controller}{\"\n\"}'"
run "kubectl -n shop get job homepage-loadtest -o jsonpath='{.spec.template.spec.containers[0].env[0].value}{\"\n\"}'"
POD=$("$KUBECTL" -n "$NS" get pods -l batch.kubernetes.io/job-name=homepage-loadtest -o jsonpath='{.items[0].metadata.name}')
note "no kubelet here: play it, the load generator's Pod starts running"
run "kubectl -n shop patch pod $POD --subresource=status --type=merge -p '{\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}'"
wait_for "Running" bash -c "[ \"\$(\"$KUBECTL\" -n $NS get loadtest homepage -o jsonpath='{.status.phase}')\" = Running ]"
run "kubectl -n shop get loadtests"
run "kubectl -n shop get loadtest homepage -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{\"\n\"}{end}'"
note "... and finishes"
run "kubectl -n shop patch pod $POD --subresource=status --type=merge -p '{\"status\":{\"phase\":\"Succeeded\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"}]}}'"
wait_for "Succeeded" bash -c "[ \"\$(\"$KUBECTL\" -n $NS get loadtest homepage -o jsonpath='{.status.phase}')\" = Succeeded ]"
run "kubectl -n shop get loadtests,jobs"
run "kubectl -n shop get loadtest homepage -o jsonpath='{.status}{\"\n\"}'"
run "kubectl -n shop get events --field-selector involvedObject.kind=LoadTest"

note "4. deleted: the garbage collector removes the Job (and its Pod)"
run "kubectl -n shop delete loadtest homepage"
wait_for "the Job to go" bash -c "! \"$KUBECTL\" -n $NS get job homepage-loadtest"
run "kubectl -n shop get jobs,pods"
