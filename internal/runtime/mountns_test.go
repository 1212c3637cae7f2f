package runtime

import (
	"strings"
	"testing"
)

// The guard that keeps the init's mount steps off the host: a process that shares its
// parent's mount namespace (this test binary and `go test`) is refused with a clear reason.
func TestOwnMountNamespaceRefusesTheHosts(t *testing.T) {
	err := ownMountNamespace()
	if err == nil || !strings.Contains(err.Error(), "refusing to change the host's mounts") {
		t.Fatalf("ownMountNamespace() in the host's mount namespace = %v, want a refusal", err)
	}
}
