# nodebake — `make image` builds the default image, `make test` runs every test.
# Both install the Debian packages they need (apt-get, as root or through sudo).

SHELL := /bin/bash
GO ?= go
SPEC ?= image.yaml
OUT ?= out

# Host tools: mmdebstrap (userland), squashfs-tools-ng (tar2sqfs), ovmf and
# qemu-system-x86 (boot), cryptsetup-bin (veritysetup checks our verity data),
# dosfstools/mtools (ESP checks), e2fsprogs, zstd, uidmap (mmdebstrap unshare mode).
BUILD_PACKAGES := mmdebstrap squashfs-tools-ng uidmap ca-certificates
TEST_PACKAGES := $(BUILD_PACKAGES) qemu-system-x86 ovmf cryptsetup-bin dosfstools mtools e2fsprogs zstd fdisk gdisk openssh-client gnupg socat

.PHONY: image demo-image test unit qemu-test bench deps-build deps-test clean

# The real image: downloads and verifies the official Bitcoin Core and Fulcrum
# releases (a machine without internet stops there; see --mirror in README).
image: deps-build
	$(GO) run ./cmd/nodebake build -f $(SPEC) --compress zstd

# A DEMO image built against stand-in releases served on 127.0.0.1: for trying
# nodebake without internet. It says DEMO everywhere; not for real use.
demo-image: deps-build
	$(GO) run ./qemu-tests/standin/demo -spec $(SPEC) -o $(OUT)/ -- --compress zstd

test: deps-test unit qemu-test

unit:
	$(GO) vet ./...
	$(GO) test ./...

# Builds the default image and boots it under QEMU (software emulation: minutes).
qemu-test:
	$(GO) test -tags qemu -count=1 -timeout 50m -v ./qemu-tests/

bench: deps-test
	$(GO) test -tags qemu -count=1 -timeout 50m -run '^$$' -bench . -benchtime 1x ./qemu-tests/

deps-build:
	@scripts/apt-install $(BUILD_PACKAGES)

deps-test:
	@scripts/apt-install $(TEST_PACKAGES)

clean:
	rm -rf $(OUT)
