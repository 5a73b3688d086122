//go:build tools

// Package tools records the commands build.sh compiles so that `go mod tidy`
// keeps their dependencies in go.mod and go.sum. It is never compiled.
package tools

import (
	_ "go.etcd.io/etcd/server/v3" // etcd, at the version k8s.io/kubernetes requires
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
