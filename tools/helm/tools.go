//go:build tools

// Package tools pins helm's command, so that `go build helm.sh/helm/v3/cmd/helm` in this module
// resolves it from go.mod and go.sum (tools/build-helm.sh).
package tools

import _ "helm.sh/helm/v3/cmd/helm"
