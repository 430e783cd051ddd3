# ociboot: `make demo` boots a VM into a container; `make test` runs every check.
GO      ?= go
GOBIN   := $(shell $(GO) env GOPATH)/bin
BIN     := bin/ociboot
GOFILES := $(shell find cmd internal test bench -name '*.go')
# Brief fuzz runs of the parsers of outside input: layers, gzip, xz, the command
# line, network and NTP parameters, keymaps, signatures. Each gets a number of
# executions (a few seconds' worth), not a duration: Go 1.26's fuzz
# coordinator can fail a duration-bound run with "context deadline
# exceeded" when it ends (golang/go#75804, fixed in Go 1.27). New inputs
# are minimised for 1 s at most. Scratch trees go to a tmpfs.
FUZZ    := TMPDIR=/dev/shm $(GO) test -run '^$$' -fuzzminimizetime 1s -fuzztime

.PHONY: all build deps lint test demo bench clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN) ./cmd/ociboot

deps:
	./scripts/install-deps.sh

lint:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOBIN)/staticcheck ./...

# Unit, integration and VM end-to-end tests. Nothing skips: a missing tool
# fails its test.
test: deps lint
	$(GO) test -count=1 -timeout 30m ./...
	$(FUZZ) 15000x -fuzz '^FuzzApplyLayer$$' ./internal/layer
	$(FUZZ) 12000x -fuzz '^FuzzApplyLayerEntries$$' ./internal/layer
	$(FUZZ) 60000x -fuzz '^FuzzReader$$' ./internal/inflate
	$(FUZZ) 10000x -fuzz '^FuzzDecode$$' ./internal/xz
	$(FUZZ) 120000x -fuzz '^FuzzParse$$' ./internal/bootcfg
	$(FUZZ) 120000x -fuzz '^FuzzMaskSecrets$$' ./internal/bootcfg
	$(FUZZ) 200000x -fuzz '^FuzzParseIface$$' ./internal/netconf
	$(FUZZ) 200000x -fuzz '^FuzzParseKernelIP$$' ./internal/netconf
	$(FUZZ) 200000x -fuzz '^FuzzParsePeer$$' ./internal/clock
	$(FUZZ) 200000x -fuzz '^FuzzParse$$' ./internal/keymap
	$(FUZZ) 200000x -fuzz '^FuzzParseSize$$' ./internal/switchroot
	$(FUZZ) 200000x -fuzz '^FuzzParseVolume$$' ./internal/bootcfg
	$(FUZZ) 200000x -fuzz '^FuzzObjectPath$$' ./internal/volume
	$(FUZZ) 20000x -fuzz '^FuzzListing$$' ./internal/volume
	$(FUZZ) 200000x -fuzz '^FuzzParse$$' ./internal/hotplug
	$(FUZZ) 20000x -fuzz '^FuzzArchive$$' ./internal/registry
	$(FUZZ) 100000x -fuzz '^FuzzXZIndex$$' ./internal/image
	$(FUZZ) 100000x -fuzz '^FuzzServe$$' ./internal/registry
	$(FUZZ) 30000x -fuzz '^FuzzReceive$$' ./internal/fleet
	$(FUZZ) 100000x -fuzz '^FuzzPayload$$' ./internal/signature
	$(FUZZ) 20000x -fuzz '^FuzzBundle$$' ./internal/signature

demo: deps build
	./scripts/demo.sh

bench: deps build
	./bench/boot.sh
	./bench/pull.sh
	./bench/root.sh
	./bench/modules.sh
	./bench/netboot.sh
	./bench/verify.sh
	$(GO) test -run '^$$' -bench Gunzip ./internal/inflate
	$(GO) test -run '^$$' -bench Decode ./internal/xz
	$(GO) test -run '^$$' -bench Blob100MiB ./internal/registry
	TMPDIR=/dev/shm $(GO) test -run '^$$' -bench MirrorVsRclone -benchtime 1x -timeout 30m ./internal/volume
	$(GO) test -run '^$$' -bench 'CacheBoot|BootStorm|SystemdContainer|Report' -benchtime 3x -timeout 60m ./test/e2e

clean:
	rm -rf bin
