# nodebake — `make image` builds the default image, `make test` runs every test.
# Both install the Debian packages they need (apt-get, as root or through sudo).

SHELL := /bin/bash
GO ?= go
SPEC ?= image.yaml
OUT ?= out

# Debian packages of every host program the code and its tests run. The table
# hosttools.Programs says which program comes from which package, and `make
# check` fails when a package here is missing (internal/hostcheck).
# Building (nodebake build):
#   mmdebstrap         the Debian userland
#   squashfs-tools-ng  tar2sqfs packs the root file system
#   uidmap             newuidmap/newgidmap: mmdebstrap's unshare mode without root
#   ca-certificates    mmdebstrap and the release downloads over https
#   kmod               depmod indexes the image's trimmed kernel modules
BUILD_PACKAGES := mmdebstrap squashfs-tools-ng uidmap ca-certificates kmod
# Testing (unit and QEMU tests), on top of building:
#   qemu-system-x86    qemu-system-x86_64 boots images
#   ovmf               UEFI firmware for QEMU
#   socat              relays guest connections to the host (QEMU guestfwd)
#   systemd-boot-efi   the boot loader the QEMU runner's test boots
#   squashfs-tools     mksquashfs/unsquashfs make and read back test root images
#   cryptsetup-bin     veritysetup checks our verity data
#   dosfstools mtools  mkfs.vfat/fsck.vfat, mmd/mcopy: ESP checks and test images
#   e2fsprogs          mkfs.ext4/e2fsck/resize2fs: data partition tests
#   zstd               decompresses the initramfs in its test
#   fdisk gdisk        sfdisk and sgdisk read back the partition table
#   openssh-client     ssh-keygen reads back the device's keys
#   gpg gpg-agent      gpg checks the stand-in releases' signatures; it starts
#                      gpg-agent even to import a public key
#   git                the install test publishes the checkout as a module version
#   systemd            systemd-analyze compare-versions: systemd-boot's version order
TEST_PACKAGES := $(BUILD_PACKAGES) qemu-system-x86 ovmf socat systemd-boot-efi squashfs-tools cryptsetup-bin dosfstools mtools e2fsprogs zstd fdisk gdisk openssh-client gpg gpg-agent git systemd

# The fast gate (about a minute; reads only, needs no root): formatting, vet
# with and without the qemu tag, tidy modules, every host program's package
# installed by the lists above, and no dead code (tests and QEMU tests count
# as users).
check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change these files: run gofmt -w on them"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags qemu ./...
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	$(GO) run ./internal/hostcheck -build "$(BUILD_PACKAGES)" -test "$(TEST_PACKAGES)"
	@out=$$($(GO) run golang.org/x/tools/cmd/deadcode -test -tags qemu ./...) || exit 1; if [ -n "$$out" ]; then echo "dead code (unreachable from any command or test): remove it"; echo "$$out"; exit 1; fi

.PHONY: check image demo-image qemu test unit qemu-test bench fuzz deps-build deps-test clean

# The real image: downloads and verifies the official Bitcoin Core and Fulcrum
# releases (a machine without internet stops there; see --mirror in README).
image: deps-build
	$(GO) run ./cmd/nodebake build -f $(SPEC) --compress zstd

# A DEMO image built against stand-in releases served on 127.0.0.1: for trying
# nodebake without internet. It says DEMO everywhere; not for real use.
demo-image: deps-build
	$(GO) run ./qemu-tests/standin/demo -spec $(SPEC) -o $(OUT)/ -- --compress zstd

# Boots IMAGE under QEMU (nodebake qemu), first installing what that needs:
# QEMU and the UEFI firmware.
QEMU_PACKAGES := qemu-system-x86 ovmf
qemu:
	@test -n "$(IMAGE)" || { echo "usage: make qemu IMAGE=out/NAME-VERSION.img"; exit 2; }
	@scripts/apt-install $(QEMU_PACKAGES)
	$(GO) run ./cmd/nodebake qemu $(IMAGE)

test: deps-test unit qemu-test

unit:
	$(GO) vet ./...
	$(GO) test ./...

# Builds the default image and boots it under QEMU (software emulation: about
# an hour on 2 cores since the lifecycle and data-upgrade tests joined; CI
# allows 90 minutes for all of .ci/run).
qemu-test:
	$(GO) test -tags qemu -count=1 -timeout 80m -v ./qemu-tests/

bench: deps-test
	$(GO) test -tags qemu -count=1 -timeout 80m -run '^$$' -bench . -benchtime 1x ./qemu-tests/

# Each fuzz test for FUZZTIME (the go tool runs one at a time). Plain
# `go test ./...` runs only their seeds (f.Add and testdata/fuzz/, where a
# crasher is kept once fixed). A worker that finds new coverage minimizes it
# first, so the exec count may stand still for a while.
FUZZTIME ?= 20s
FUZZ := spec:FuzzParse contract:FuzzParse ota:FuzzManifest ota:FuzzOpenTar ota:FuzzEntryName \
	ota:FuzzReadEntries ota:FuzzCompareVersions internal/disk:FuzzParseEntry
fuzz:
	@set -e; for t in $(FUZZ); do echo "==> $$t"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) ./$${t%%:*}; done

deps-build:
	@scripts/apt-install $(BUILD_PACKAGES)

deps-test:
	@scripts/apt-install $(TEST_PACKAGES)

clean:
	rm -rf $(OUT)
