#!/usr/bin/env bash
# Obtain the envtest binaries: etcd, kube-apiserver, kube-controller-manager and kubectl.
#
#   bash hack/envtest/build.sh [--quiet-if-unavailable] [--print-dir]
#
# kube-apiserver, kube-controller-manager and kubectl are compiled from k8s.io/kubernetes at the
# version pinned in hack/envtest/go.mod (with every k8s.io staging module pinned by `replace`), so
# the recipe needs only Go and the Go module proxy. etcd comes from the machine: an existing `etcd`
# on PATH, else Debian's `etcd-server` package (installed with apt-get when running as root).
#
# The binaries go to a cache OUTSIDE the source tree, one folder per Kubernetes version:
#   ${KCTL_ENVTEST_ASSETS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kctl-runtime/envtest/<version>}
# A folder that already holds working binaries of the pinned version is reused (no build). The
# build writes to a scratch folder and moves the results in, so an interrupted build leaves no
# half-written binaries behind.
#
# Output: progress and errors go to stderr; the LAST LINE ON STDOUT IS THE ASSET FOLDER (use it as
# KUBEBUILDER_ASSETS). Any failure exits non-zero with the underlying error (e.g. the exact `go`
# error when the module proxy cannot provide k8s.io/kubernetes).
#
# --quiet-if-unavailable: when Go is not installed, print one line to stderr, nothing to stdout,
#   and exit 0 (for `make test` on machines without Go: the real tier is then skipped, or fails
#   in CI). Every other failure still fails loudly.
# --print-dir: print the asset folder and exit, building nothing.
#
# Environment: KCTL_ENVTEST_ASSETS_DIR (asset folder), KCTL_ENVTEST_BUILD_JOBS (go build -p,
# default min(nproc, 4): each compile of the big packages can take ~1 GB), GO (the go command),
# KCTL_ENVTEST_ALLOW_ANY_GO=1 (skip the Go version check below).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
quiet_if_unavailable=0
print_dir=0
for arg in "$@"; do
	case "$arg" in
	--quiet-if-unavailable) quiet_if_unavailable=1 ;;
	--print-dir) print_dir=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "build.sh: unknown argument: $arg (see --help)" >&2
		exit 2
		;;
	esac
done

log() { echo "envtest-assets: $*" >&2; }
die() {
	echo "envtest-assets: ERROR: $*" >&2
	exit 1
}

version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$here/go.mod")"
[ -n "$version" ] || die "cannot read the pinned k8s.io/kubernetes version from $here/go.mod"
assets="${KCTL_ENVTEST_ASSETS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kctl-runtime/envtest/$version}"

if [ "$print_dir" = 1 ]; then
	echo "$assets"
	exit 0
fi

# A binary is usable when it runs and reports the pinned version.
reports_version() { # binary
	[ -x "$1" ] && "$1" --version 2>/dev/null | grep -qF "$version"
}
have_k8s_binaries() {
	reports_version "$assets/kube-apiserver" &&
		reports_version "$assets/kube-controller-manager" &&
		[ -x "$assets/kubectl" ] &&
		"$assets/kubectl" version --client 2>/dev/null | grep -qF "$version"
}

build_k8s_binaries() {
	local go="${GO:-}"
	if [ -z "$go" ]; then
		go="$(command -v go || true)"
		[ -n "$go" ] || { [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go; }
	fi
	if [ -z "$go" ]; then
		local reason="Go is not installed (needed once to build kube-apiserver $version; install Go >= 1.26, < 1.27, or set KUBEBUILDER_ASSETS to a folder with etcd and kube-apiserver)"
		if [ "$quiet_if_unavailable" = 1 ]; then
			log "unavailable: $reason"
			exit 0
		fi
		die "$reason"
	fi

	# Never let `go` swap in another toolchain: kube-apiserver built with Go 1.27 serves a broken
	# OpenAPI document; the go.mod of k8s.io/kubernetes $version asks for Go 1.26.
	export GOTOOLCHAIN=local
	local gover
	gover="$("$go" env GOVERSION)"
	case "$gover" in
	go1.26 | go1.26.*) ;;
	*)
		[ "${KCTL_ENVTEST_ALLOW_ANY_GO:-}" = 1 ] ||
			die "$go is $gover; kube-apiserver $version must be built with Go 1.26.x (Go 1.27 builds serve broken OpenAPI). Install Go 1.26, point GO= at it, or set KCTL_ENVTEST_ALLOW_ANY_GO=1 to try anyway."
		;;
	esac

	export GOFLAGS=-mod=mod
	local jobs="${KCTL_ENVTEST_BUILD_JOBS:-}"
	if [ -z "$jobs" ]; then
		jobs="$(nproc 2>/dev/null || echo 2)"
		[ "$jobs" -le 4 ] || jobs=4
	fi

	cd "$here"
	log "fetching k8s.io/kubernetes@$version and its dependencies (module proxy: $("$go" env GOPROXY))"
	if ! "$go" mod download k8s.io/kubernetes >&2; then
		die "the Go module proxy could not provide k8s.io/kubernetes@$version (error above)"
	fi

	# Version stamping, as the Kubernetes release build does, so /version and --version report it.
	local minor build_date
	minor="$(echo "$version" | cut -d. -f2)"
	build_date="$("$go" list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)"
	local ldflags="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=${build_date:-1970-01-01T00:00:00Z}"
	done

	mkdir -p "$(dirname "$assets")"
	local scratch
	scratch="$(mktemp -d "$(dirname "$assets")/.build-$version.XXXXXX")"
	# shellcheck disable=SC2064 # expand now: the trap must remove this scratch folder
	trap "rm -rf '$scratch'" EXIT
	log "building kube-apiserver, kube-controller-manager, kubectl $version with $gover (-p $jobs; 4-13 min on 2 cores, once)"
	local start=$SECONDS
	CGO_ENABLED=0 "$go" build -p "$jobs" -trimpath -ldflags "$ldflags" -o "$scratch/" \
		k8s.io/kubernetes/cmd/kube-apiserver \
		k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kubectl >&2 ||
		die "go build of the Kubernetes $version binaries failed (error above)"
	log "built in $((SECONDS - start)) s"
	mkdir -p "$assets"
	for bin in kube-apiserver kube-controller-manager kubectl; do
		mv -f "$scratch/$bin" "$assets/$bin"
	done
}

ensure_etcd() {
	if [ -x "$assets/etcd" ] && "$assets/etcd" --version >/dev/null 2>&1; then
		return
	fi
	local etcd
	etcd="$(command -v etcd || true)"
	if [ -z "$etcd" ]; then
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
			log "etcd not found: installing Debian's etcd-server with apt-get"
			export DEBIAN_FRONTEND=noninteractive
			apt-get install -y -q etcd-server >&2 ||
				{ apt-get update -q >&2 && apt-get install -y -q etcd-server >&2; } ||
				die "apt-get install etcd-server failed (error above)"
			etcd="$(command -v etcd || true)"
			[ -n "$etcd" ] || die "etcd-server was installed but no etcd command is on PATH"
		else
			die "etcd not found: install it (Debian/Ubuntu: apt-get install etcd-server; needs root), or put an etcd binary in $assets"
		fi
	fi
	"$etcd" --version >/dev/null 2>&1 || die "$etcd --version failed"
	mkdir -p "$assets"
	# A copy, not a link: the folder stays usable as KUBEBUILDER_ASSETS on its own.
	cp -f "$(readlink -f "$etcd")" "$assets/etcd.tmp"
	mv -f "$assets/etcd.tmp" "$assets/etcd"
	log "etcd: $("$assets/etcd" --version | head -n 1) (from $etcd)"
}

if have_k8s_binaries; then
	log "Kubernetes $version binaries present in $assets (no build)"
else
	build_k8s_binaries
	have_k8s_binaries || die "the binaries in $assets do not report version $version after the build"
fi
ensure_etcd
echo "$assets"
