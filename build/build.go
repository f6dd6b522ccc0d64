// Package build is the image pipeline: it reads as the list of stages in
// Build below, each of which is one call into the package that does it.
//
//	spec → verified releases → userland (mmdebstrap, cached) → tree + configuration → squashfs
//	     → dm-verity → initramfs (Go /init) → ESP (systemd-boot, entry per slot)
//	     → GPT disk → checksum (and optional .zst, same pass), manifest
//	     → bill of materials (SPDX)
//
// Everything is written into a work folder beside the output and the image
// is renamed into place only when complete.
package build

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/disk"
	"github.com/nodebake/nodebake/internal/rootfs"
	"github.com/nodebake/nodebake/internal/squashfs"
	"github.com/nodebake/nodebake/internal/tree"
	"github.com/nodebake/nodebake/internal/verity"
	"github.com/nodebake/nodebake/spec"
)

// Options says what to build and where.
type Options struct {
	Spec     *spec.Spec
	Output   string // the image path, e.g. out/minibolt-0.1.0.img
	CacheDir string // userland tarballs
	Source   string // nodebake's source tree: a development build's device binaries come from it
	Compress bool   // also write Output + ".zst"
	Mirror   string // a folder or URL holding the release files (see artifact.FetchOptions)
	Offline  bool   // never download: releases come from Mirror or the cache
	Log      io.Writer

	// Release is a released nodebake's build info: the device binaries
	// come from its module version, never from Source (see DeviceSource).
	Release *debug.BuildInfo
}

// Result describes a finished image.
type Result struct {
	Image    string
	SHA256   string
	Manifest *contract.Manifest
	Root     contract.Slot
}

// Build runs the pipeline. On any error, including a cancelled ctx,
// nothing is left at the output paths.
func Build(ctx context.Context, o Options) (res *Result, err error) {
	s := o.Spec
	epoch, err := spec.Epoch()
	if err != nil {
		return nil, err
	}
	log := newLog(ctx, o.Log)
	outDir := filepath.Dir(o.Output)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(outDir, ".nodebake-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	ids := IDs(s)

	var releases []verified
	if err := log.stage("artifacts", "fetch and verify the pinned releases", func() (err error) {
		releases, err = fetchArtifacts(ctx, s, o, log.detail())
		return err
	}); err != nil {
		return nil, err
	}

	var base string
	err = log.stage("userland", fmt.Sprintf("Debian %s from %s", s.Debian.Suite, s.Debian.Mirror), func() (err error) {
		base, err = rootfs.Userland(ctx, s.Debian, epoch, o.CacheDir, log.detail())
		return err
	})
	if err != nil {
		return nil, err
	}

	t, err := tree.FromTar(base)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	var m *contract.Manifest
	if err := log.stage("configure", "users, overlays, units", func() (err error) {
		m, err = rootfs.Configure(t, s)
		return err
	}); err != nil {
		return nil, err
	}

	mods := s.Kernel.Modules
	if err := log.stage("kernel modules", "profile "+mods.Profile+extraNote(mods.Extra), func() error {
		return trimModules(t, s, m.Kernel, o.CacheDir, log.detail())
	}); err != nil {
		return nil, err
	}

	if m.Artifacts, err = installArtifacts(t, s, releases); err != nil {
		return nil, err
	}
	if m.DataFormats, err = dataFormats(m.Artifacts); err != nil {
		return nil, err
	}
	m.Nodebake = nodebakeVersion(o)
	rootfs.WriteManifest(t, m)

	var initBin []byte
	if err := log.stage("device binaries", deviceFrom(o)+": /init and nodectl for linux/amd64", func() error {
		bins, err := deviceBinaries(ctx, o, work)
		if err != nil {
			return err
		}
		initBin = bins["nodebake-init"]
		t.WriteFile("usr/bin/nodectl", bins["nodectl"], 0o755, tree.Root)
		return nil
	}); err != nil {
		return nil, err
	}

	rootImg := filepath.Join(work, "root.img")
	if err := log.stage("root filesystem", "squashfs, zstd", func() error {
		return squashfs.Build(ctx, t, rootImg, epoch, log.detail())
	}); err != nil {
		return nil, err
	}

	slot := contract.Slot{Name: "a", RootPartUUID: ids.RootA, DataPartUUID: ids.Data}
	if err := log.stage("verity", "dm-verity hash tree", func() (err error) {
		slot.Verity, err = verity.FormatFile(rootImg, ids.veritySalt(), ids.verityUUID())
		return err
	}); err != nil {
		return nil, err
	}
	if size := fileSize(rootImg); size > int64(s.Disk.SlotSize) {
		return nil, fmt.Errorf("root-a: root filesystem and verity data take %s but a slot holds %s: raise disk.slot_size in %s",
			spec.Size(size), s.Disk.SlotSize, s.File)
	}

	var initrd []byte
	if err := log.stage("initramfs", "Go /init + kernel modules, cpio, zstd", func() (err error) {
		initrd, err = buildInitramfs(t, m.Kernel, initBin, epoch)
		return err
	}); err != nil {
		return nil, err
	}

	espImg := filepath.Join(work, "esp.img")
	if err := log.stage("ESP", "FAT32, systemd-boot, boot entry for slot a", func() error {
		files, err := espFiles(t, s, m.Kernel, slot, initrd)
		if err != nil {
			return err
		}
		return disk.ESP(espImg, int64(s.Disk.ESPSize), files, epoch)
	}); err != nil {
		return nil, err
	}

	outputs := newOutputs(o.Output)
	defer outputs.abort()
	img := outputs.temp(o.Output)
	if err := log.stage("disk", fmt.Sprintf("GPT, %s", spec.Size(s.Disk.Total())), func() error {
		bar := log.counter("disk", 0)
		defer bar.Done()
		return disk.Write(img, ids.Disk, partitions(s, ids, espImg, rootImg), func(done, total int64) {
			bar.SetTotal(total)
			bar.Set(done)
		})
	}); err != nil {
		return nil, err
	}

	res = &Result{Image: o.Output, Manifest: m, Root: slot}
	what, zst := "sha256, manifest", ""
	if o.Compress {
		what, zst = "sha256 and zstd in one pass, manifest", outputs.temp(o.Output+".zst")
	}
	if err := log.stage("checksum", what, func() error {
		sum, err := checksum(ctx, img, zst, log)
		if err != nil {
			return err
		}
		res.SHA256 = sum
		if err := os.WriteFile(outputs.temp(ManifestPath(o.Output)), m.JSON(), 0o644); err != nil {
			return err
		}
		line := fmt.Sprintf("%s  %s\n", sum, filepath.Base(o.Output))
		return os.WriteFile(outputs.temp(o.Output+".sha256"), []byte(line), 0o644)
	}); err != nil {
		return nil, err
	}

	if err := log.stage("bill of materials", "SPDX 2.3: Debian packages and verified releases", func() error {
		return writeSBOM(outputs.temp(SBOMPath(o.Output)), t, s, o.Output, res.SHA256, sbomCreator(o), epoch, releases)
	}); err != nil {
		return nil, err
	}

	if err := outputs.commit(); err != nil {
		return nil, err
	}
	log.done(res)
	return res, nil
}

// ManifestPath is where the manifest is written beside an image.
func ManifestPath(image string) string {
	return strings.TrimSuffix(image, ".img") + ".manifest.json"
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

func elapsed(start time.Time) string {
	return time.Since(start).Round(100 * time.Millisecond).String()
}
