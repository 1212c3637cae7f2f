# hardway: `make` builds the eight static tools into bin/.
#   sudo make demo   start the local registry, seed it, run the whole docker-run flow
#   sudo make test   the whole test suite (what .ci/run calls)
#   sudo make labs   the workshop's labs, in order, non-interactively
#   sudo make test-vm  the kernel tests on Debian 12's kernel 6.1 with cgroup v2 only (qemu)
#   sudo make bench  each stage beside its industrial twin (hyperfine)
#   sudo make soak   200 docker-run -d + docker-rm cycles, then a check that nothing leaked
SHELL    := /bin/bash
TOOLS    := pull unpack overlay nsrun cgset netsetup shim inspect
GO       ?= go
GOFLAGS  ?=
BIN      := bin
TOOLBIN  := $(CURDIR)/.tools/bin
CRANE_VERSION := v0.22.1
export PATH := $(CURDIR)/$(BIN):$(TOOLBIN):$(PATH)

.PHONY: all build tools test test-vm labs demo bench soak clean vet

all: build

build: $(addprefix $(BIN)/,$(TOOLS))

$(BIN)/%: FORCE
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build $(GOFLAGS) -trimpath -ldflags='-s -w' -o $@ ./cmd/$*

FORCE:

# crane is the real registry client that seed-images pushes with.
tools: $(TOOLBIN)/crane

$(TOOLBIN)/crane:
	@mkdir -p $(TOOLBIN)
	GOBIN=$(TOOLBIN) CGO_ENABLED=0 $(GO) install github.com/google/go-containerregistry/cmd/crane@$(CRANE_VERSION)

vet:
	@test -z "$$(gofmt -l cmd internal test)" || { gofmt -l cmd internal test; echo 'gofmt: the files above need formatting'; exit 1; }
	$(GO) vet ./...

test: build tools vet
	$(GO) test -count=1 -p 1 -timeout 30m ./...

demo: build tools
	scripts/demo

# The kernel tests on Debian 12's stock kernel 6.1 with cgroup v2 only, under qemu (TCG).
test-vm: build tools
	scripts/test-vm

# The workshop alone: every lab in order, then the check that nothing is left.
labs: build tools
	$(GO) test -count=1 -v -timeout 15m ./test/labs

# Each stage beside its industrial twin, with hyperfine; never part of `make test`.
bench: build tools
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends hyperfine crun conmon time podman runc jq python3 >/dev/null
	@set -e; for b in bench/*.sh; do echo "== $$b"; bash $$b; done

# The soak: SOAK=N cycles (default 200) of docker-run -d + docker-rm; never part of `make test`.
soak: build tools
	scripts/soak $(SOAK)

clean:
	rm -rf $(BIN) .tools
