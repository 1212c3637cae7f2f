//go:build tools

// Package tools pins the test tools nsrun's tests build, in a module of their own so the
// main module does not inherit their dependencies.
package tools

import (
	_ "github.com/opencontainers/runtime-tools/cmd/runtimetest"
)
