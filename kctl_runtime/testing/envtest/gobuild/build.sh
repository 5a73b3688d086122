#!/usr/bin/env bash
# Obtain the envtest binaries: etcd, kube-apiserver, kube-controller-manager and kubectl.
#
#   python -m kctl_runtime.testing.envtest build [--quiet-if-unavailable] [--print-dir]
#   bash hack/envtest/build.sh [...]     (in the repository: the same script)
#
# This script ships inside the kctl-runtime package (kctl_runtime/testing/envtest/gobuild/), next to
# the Go module it builds, so a pip user has it too. Without Go, KUBEBUILDER_ASSETS pointing at a
# folder with etcd and kube-apiserver (setup-envtest's output works) is the other way.
#
# All four are compiled from Go modules pinned in go.mod next to this script: k8s.io/kubernetes (with
# every k8s.io staging module pinned by `replace`) and go.etcd.io/etcd/server/v3 at the version
# that Kubernetes release itself requires. The recipe needs only Go and the Go module proxy.
# With KCTL_ENVTEST_ETCD=system, etcd comes from the machine instead: an `etcd` on PATH, else
# Debian's `etcd-server` package (installed with apt-get when running as root; 3.4.23 on Debian 12,
# which kube-apiserver 1.36 accepts, without watch-progress requests, so without sendInitialEvents).
#
# The binaries go to a cache OUTSIDE the source tree, one folder per Kubernetes version:
#   ${KCTL_ENVTEST_ASSETS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kctl-runtime/envtest/<version>}
# Binaries already there that report the pinned versions are reused (nothing is built when all
# four do). The build copies the Go module into a scratch folder (the package folder may be
# read-only), builds there and moves the results in, so an interrupted build leaves no half-written
# binaries behind.
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
# KCTL_ENVTEST_ALLOW_ANY_GO=1 (skip the Go version check below), KCTL_ENVTEST_ETCD=system (above).
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

pinned() { # module -> its version in go.mod's require lines
	awk -v m="$1" '($1 == "require" && $2 == m) { print $3 } ($1 == m && $2 ~ /^v/) { print $2 }' "$here/go.mod" | head -n 1
}
version="$(pinned k8s.io/kubernetes)"
etcd_version="$(pinned go.etcd.io/etcd/server/v3)"
[ -n "$version" ] || die "cannot read the pinned k8s.io/kubernetes version from $here/go.mod"
[ -n "$etcd_version" ] || die "cannot read the pinned go.etcd.io/etcd/server/v3 version from $here/go.mod"
assets="${KCTL_ENVTEST_ASSETS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kctl-runtime/envtest/$version}"
etcd_from="${KCTL_ENVTEST_ETCD:-build}"
case "$etcd_from" in
build | system) ;;
*) die "KCTL_ENVTEST_ETCD must be 'build' (default) or 'system', not '$etcd_from'" ;;
esac

if [ "$print_dir" = 1 ]; then
	echo "$assets"
	exit 0
fi

# A binary is usable when it runs and reports the pinned version.
reports() { # binary expected-text [args...]
	local binary="$1" expected="$2"
	shift 2
	local out
	# Not a pipe into grep -q: with pipefail, the binary's SIGPIPE would count as a failure.
	[ -x "$binary" ] && out="$("$binary" "$@" 2>/dev/null)" && [[ "$out" == *"$expected"* ]]
}
declare -A packages=(
	[kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
	[kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
	[kubectl]=k8s.io/kubernetes/cmd/kubectl
	[etcd]=go.etcd.io/etcd/server/v3
)
wanted() { # the binaries to build: missing or of another version
	reports "$assets/kube-apiserver" "$version" --version || echo kube-apiserver
	reports "$assets/kube-controller-manager" "$version" --version || echo kube-controller-manager
	reports "$assets/kubectl" "$version" version --client || echo kubectl
	if [ "$etcd_from" = build ]; then
		reports "$assets/etcd" "etcd Version: ${etcd_version#v}" --version || echo etcd
	fi
}

go_cmd=""
find_go() { # sets go_cmd, or ends the script when there is no Go
	go_cmd="${GO:-}"
	if [ -z "$go_cmd" ]; then
		go_cmd="$(command -v go || true)"
		[ -n "$go_cmd" ] || { [ -x /usr/local/go/bin/go ] && go_cmd=/usr/local/go/bin/go; }
	fi
	if [ -n "$go_cmd" ] && ! command -v "$go_cmd" >/dev/null; then
		die "GO=$go_cmd is not a command: point GO at a Go 1.26 go binary, or unset it"
	fi
	if [ -z "$go_cmd" ]; then
		local reason="Go is not installed (needed once to build kube-apiserver $version; install Go >= 1.26, < 1.27, or set KUBEBUILDER_ASSETS to a folder with etcd and kube-apiserver, e.g. setup-envtest's output)"
		if [ "$quiet_if_unavailable" = 1 ]; then
			log "unavailable: $reason"
			exit 0
		fi
		die "$reason"
	fi
}

build() { # binary names
	local go gover
	find_go
	go="$go_cmd"
	# Never let `go` swap in another toolchain: kube-apiserver built with Go 1.27 serves a broken
	# OpenAPI document; the go.mod of k8s.io/kubernetes $version asks for Go 1.26.
	export GOTOOLCHAIN=local
	gover="$("$go" env GOVERSION)"
	case "$gover" in
	go1.26 | go1.26.*) ;;
	*)
		[ "${KCTL_ENVTEST_ALLOW_ANY_GO:-}" = 1 ] ||
			die "$go is $gover; kube-apiserver $version must be built with Go 1.26.x (Go 1.27 builds serve broken OpenAPI). Install Go 1.26, point GO= at it, or set KCTL_ENVTEST_ALLOW_ANY_GO=1 to try anyway."
		;;
	esac

	export GOFLAGS=-mod=mod CGO_ENABLED=0
	local jobs="${KCTL_ENVTEST_BUILD_JOBS:-}"
	if [ -z "$jobs" ]; then
		jobs="$(nproc 2>/dev/null || echo 2)"
		[ "$jobs" -le 4 ] || jobs=4
	fi

	mkdir -p "$(dirname "$assets")"
	local scratch
	scratch="$(mktemp -d "$(dirname "$assets")/.build-$version.XXXXXX")"
	# shellcheck disable=SC2064 # expand now: the trap must remove this scratch folder
	trap "rm -rf '$scratch'" EXIT
	# go may rewrite go.mod/go.sum (-mod=mod): work on a copy, never in the (read-only) package folder
	mkdir -p "$scratch/module" "$scratch/bin"
	cp "$here/go.mod" "$here/go.sum" "$here/tools.go" "$scratch/module/"
	cd "$scratch/module"
	log "fetching k8s.io/kubernetes@$version (module proxy: $("$go" env GOPROXY))"
	if ! "$go" mod download k8s.io/kubernetes go.etcd.io/etcd/server/v3 >&2; then
		die "the Go module proxy could not provide k8s.io/kubernetes@$version or go.etcd.io/etcd/server/v3@$etcd_version (error above)"
	fi

	# Version stamping, as the Kubernetes release build does, so /version and --version report it.
	local minor build_date
	minor="$(echo "$version" | cut -d. -f2)"
	build_date="$("$go" list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)"
	local k8s_ldflags="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		k8s_ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=${build_date:-1970-01-01T00:00:00Z}"
	done

	local k8s_pkgs=() name
	for name in "$@"; do
		[ "$name" = etcd ] || k8s_pkgs+=("${packages[$name]}")
	done
	log "building $* ($version, etcd $etcd_version) with $gover, -p $jobs (all four: 4-18 min on 2 cores, once)"
	local start=$SECONDS
	if [ "${#k8s_pkgs[@]}" -gt 0 ]; then
		"$go" build -p "$jobs" -trimpath -ldflags "$k8s_ldflags" -o "$scratch/bin/" "${k8s_pkgs[@]}" >&2 ||
			die "go build of the Kubernetes $version binaries failed (error above)"
	fi
	if [[ " $* " == *" etcd "* ]]; then
		"$go" build -p "$jobs" -trimpath -ldflags "-s -w" -o "$scratch/bin/etcd" "${packages[etcd]}" >&2 ||
			die "go build of etcd $etcd_version failed (error above)"
	fi
	log "built in $((SECONDS - start)) s"
	mkdir -p "$assets"
	for name in "$@"; do
		mv -f "$scratch/bin/$name" "$assets/$name"
	done
}

system_etcd() {
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
			die "etcd not found: install it (Debian/Ubuntu: apt-get install etcd-server; needs root), put an etcd binary in $assets, or drop KCTL_ENVTEST_ETCD=system to build it"
		fi
	fi
	"$etcd" --version >/dev/null 2>&1 || die "$etcd --version failed"
	mkdir -p "$assets"
	# A copy, not a link: the folder stays usable as KUBEBUILDER_ASSETS on its own.
	cp -f "$(readlink -f "$etcd")" "$assets/etcd.tmp"
	mv -f "$assets/etcd.tmp" "$assets/etcd"
}

mapfile -t todo < <(wanted)
if [ "${#todo[@]}" -eq 0 ]; then
	log "Kubernetes $version binaries present in $assets (no build)"
else
	build "${todo[@]}"
	mapfile -t todo < <(wanted)
	[ "${#todo[@]}" -eq 0 ] || die "after the build, ${todo[*]} in $assets do not report the pinned version"
fi
[ "$etcd_from" = build ] || system_etcd
log "$("$assets/etcd" --version | head -n 1), $("$assets/kube-apiserver" --version) in $assets"
echo "$assets"
