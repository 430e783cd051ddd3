# ociboot: `make demo` boots a VM into a container; `make test` runs every check.
GO      ?= go
GOBIN   := $(shell $(GO) env GOPATH)/bin
BIN     := bin/ociboot
GOFILES := $(shell find cmd internal test bench -name '*.go')
# Brief fuzz runs of the parsers of outside input: layers, gzip, the command
# line, network and NTP parameters, keymaps. New inputs are minimised for 1 s at
# most: the 60 s default outlasts a 10 s run and fails it with "context
# deadline exceeded". Scratch trees go to a tmpfs.
FUZZ    := TMPDIR=/dev/shm $(GO) test -run '^$$' -fuzztime 10s -fuzzminimizetime 1s -fuzz

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
	$(FUZZ) '^FuzzApplyLayer$$' ./internal/image
	$(FUZZ) '^FuzzApplyLayerEntries$$' ./internal/image
	$(FUZZ) '^FuzzReader$$' ./internal/inflate
	$(FUZZ) '^FuzzParse$$' ./internal/bootcfg
	$(FUZZ) '^FuzzMaskSecrets$$' ./internal/bootcfg
	$(FUZZ) '^FuzzParseIface$$' ./internal/netconf
	$(FUZZ) '^FuzzParseKernelIP$$' ./internal/netconf
	$(FUZZ) '^FuzzParsePeer$$' ./internal/clock
	$(FUZZ) '^FuzzParse$$' ./internal/keymap

demo: deps build
	./scripts/demo.sh

bench: deps build
	./bench/boot.sh
	./bench/pull.sh
	$(GO) test -run '^$$' -bench Gunzip ./internal/inflate

clean:
	rm -rf bin
