package bundler

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/atomicfile"
	"github.com/nodebake/nodebake/internal/chunkindex"
	"github.com/nodebake/nodebake/internal/disk"
	"github.com/nodebake/nodebake/internal/verity"
	"github.com/nodebake/nodebake/ota"
)

// Create makes a signed bundle from a built image and writes it to the
// directory dir, which must not exist yet (the bundle is assembled beside
// it and renamed into place when complete).
//
// Everything comes from the image itself: root-a's content up to the end
// of its verity data, the kernel and initramfs that slot a's boot entry
// names, the kernel arguments and verity parameters on that entry, and the
// name and version recorded in the root filesystem. The verity data is
// rebuilt from the squashfs and must reproduce the entry's root hash, so a
// damaged image cannot become a bundle.
func Create(ctx context.Context, image string, key ed25519.PrivateKey, dir string, progress ota.Progress) (*ota.Bundle, error) {
	if _, err := os.Stat(dir); err == nil {
		return nil, fmt.Errorf("%s already exists: choose a new directory for the bundle", dir)
	}
	src, err := readImage(image)
	if err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)

	f, err := os.Open(image)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := src.manifest
	if m.Root, m.RootFS, m.VerityData, err = src.root(ctx, f, stage, progress); err != nil {
		return nil, err
	}
	if m.RootIndex, err = writeIndex(ctx, stage, m.Root.Size, progress); err != nil {
		return nil, err
	}
	esp, err := fat32.Read(file.New(f, true), src.esp.Size, src.esp.Start, 512)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the ESP: %w", image, err)
	}
	for _, c := range []struct {
		name, path string
		dst        *ota.File
	}{{ota.KernelFile, src.entry.Linux, &m.Kernel}, {ota.InitrdFile, src.entry.Initrd[0], &m.Initrd}} {
		p := strings.TrimPrefix(c.path, "/")
		st, err := esp.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: the boot entry names %s, which the ESP lacks: %w", image, c.path, err)
		}
		r, err := esp.OpenFile(p, os.O_RDONLY)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", image, c.path, err)
		}
		*c.dst, err = ota.SaveFile(ctx, stage, c.name, r, st.Size(), nil, progress)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", image, c.path, err)
		}
	}

	raw, sig, err := ota.Seal(&m, key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", image, err)
	}
	if err := atomicfile.Write(filepath.Join(stage, ota.SignatureFile), sig, 0o644); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(stage, ota.ManifestFile), raw, 0o644); err != nil {
		return nil, err
	}
	if err := os.Chmod(stage, 0o755); err != nil {
		return nil, err
	}
	if err := os.Rename(stage, dir); err != nil {
		return nil, err
	}
	return ota.Open(dir)
}

// writeIndex cuts dir's root.img into chunks and writes their index,
// root.idx, beside it: what a device needs to fetch only the chunks it
// lacks.
func writeIndex(ctx context.Context, dir string, size int64, progress ota.Progress) (*ota.File, error) {
	f, err := os.Open(filepath.Join(dir, ota.RootFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	x, err := chunkindex.Build(ctx, f, size, chunkindex.Default, func(done int64) { progress.Report("chunk index", done, size) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ota.RootFile, err)
	}
	b := x.Encode()
	if err := atomicfile.Write(filepath.Join(dir, ota.RootIndexFile), b, 0o644); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return &ota.File{Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}, nil
}

// imageSource is what Create reads from an image before copying anything.
type imageSource struct {
	path     string
	manifest ota.Manifest // without the file records
	rootA    disk.PartitionInfo
	esp      disk.PartitionInfo
	entry    disk.Entry
	slot     contract.Slot
}

func readImage(image string) (*imageSource, error) {
	info, err := disk.Inspect(image)
	if err != nil {
		return nil, err
	}
	src := &imageSource{path: image}
	parts := map[string]disk.PartitionInfo{}
	for _, p := range info.Partitions {
		parts[p.Name] = p
	}
	for _, name := range []string{contract.ESP, contract.RootA, contract.RootB, contract.Data} {
		if _, ok := parts[name]; !ok {
			return nil, fmt.Errorf("%s has no %s partition: not a nodebake image", image, name)
		}
	}
	src.rootA, src.esp = parts[contract.RootA], parts[contract.ESP]
	if info.ESP == nil {
		return nil, fmt.Errorf("%s: the ESP could not be read", image)
	}
	var found []string
	for _, e := range info.ESP.Entries {
		if n, ok := ota.EntrySlot(e.File); ok && n == "a" {
			src.entry = e
			found = append(found, e.File)
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("%s: want one boot entry for slot a, found %d %v", image, len(found), found)
	}
	if len(src.entry.Initrd) != 1 || src.entry.Linux == "" {
		return nil, fmt.Errorf("%s: %s: want one linux and one initrd line", image, src.entry.File)
	}
	if src.slot, err = contract.Parse(src.entry.Options); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", image, src.entry.File, err)
	}
	if src.slot.Name != "a" || src.slot.RootPartUUID != parts[contract.RootA].UUID || src.slot.DataPartUUID != parts[contract.Data].UUID {
		return nil, fmt.Errorf("%s: %s names slot %s on PARTUUID %s, but root-a is %s: the entry does not belong to this disk",
			image, src.entry.File, src.slot.Name, src.slot.RootPartUUID, parts[contract.RootA].UUID)
	}

	if src.rootA.Manifest == nil {
		return nil, fmt.Errorf("%s: root-a has no %s: not a nodebake image", image, contract.ManifestPath)
	}
	id, err := contract.ParseManifest(src.rootA.Manifest)
	if err != nil {
		return nil, fmt.Errorf("%s: root-a's %s: %w", image, contract.ManifestPath, err)
	}
	if src.entry.Version != id.Version {
		return nil, fmt.Errorf("%s: the boot entry says version %q but the root filesystem says %q", image, src.entry.Version, id.Version)
	}
	v := src.slot.Verity
	src.manifest = ota.Manifest{
		Format:      ota.Format,
		Name:        id.Name,
		Version:     id.Version,
		Compatible:  id.Name,
		KernelArgs:  kernelArgs(src.entry.Options),
		Partitions:  ota.Partitions{RootA: parts[contract.RootA].UUID, RootB: parts[contract.RootB].UUID, Data: parts[contract.Data].UUID},
		Verity:      ota.Verity{RootHash: v.RootHash, Salt: v.Salt, DataBlocks: v.DataBlocks, HashOffset: v.HashOffset},
		DataFormats: id.Formats(),
	}
	return src, nil
}

// kernelArgs is a boot entry's options without the slot's parameters.
func kernelArgs(options string) string {
	var keep []string
	for _, f := range strings.Fields(options) {
		if !strings.HasPrefix(f, "nodebake.") {
			keep = append(keep, f)
		}
	}
	return strings.Join(keep, " ")
}

// root copies root-a's squashfs (everything before the verity superblock)
// into dir and rebuilds the verity data with the image's salt and verity
// UUID. The result must carry the entry's root hash: then it is, byte for
// byte, what the slot holds.
func (src *imageSource) root(ctx context.Context, img *os.File, dir string, progress ota.Progress) (root, fs, vdata ota.File, err error) {
	v := src.slot.Verity
	if int64(v.HashOffset)+4096 > src.rootA.Size {
		return root, fs, vdata, fmt.Errorf("%s: the boot entry puts the verity superblock at %d, past root-a's end (%d bytes)", src.path, v.HashOffset, src.rootA.Size)
	}
	sb := make([]byte, 32)
	if _, err := img.ReadAt(sb, src.rootA.Start+int64(v.HashOffset)); err != nil {
		return root, fs, vdata, err
	}
	if !bytes.Equal(sb[:8], []byte("verity\x00\x00")) {
		return root, fs, vdata, fmt.Errorf("%s: root-a has no verity superblock at byte %d", src.path, v.HashOffset)
	}
	var uuid [16]byte
	copy(uuid[:], sb[16:32])
	salt, err := hex.DecodeString(v.Salt)
	if err != nil {
		return root, fs, vdata, err
	}

	if _, err := ota.SaveFile(ctx, dir, ota.RootFile, io.NewSectionReader(img, src.rootA.Start, int64(v.HashOffset)), int64(v.HashOffset), nil, progress); err != nil {
		return root, fs, vdata, err
	}
	path := filepath.Join(dir, ota.RootFile)
	progress.Report("verity", 0, 1)
	got, err := verity.FormatFile(path, salt, uuid)
	if err != nil {
		return root, fs, vdata, err
	}
	progress.Report("verity", 1, 1)
	if got != v {
		return root, fs, vdata, fmt.Errorf("%s: root-a's squashfs gives verity root hash %s, the boot entry says %s: the image is damaged",
			src.path, got.RootHash, v.RootHash)
	}
	f, err := os.Open(path)
	if err != nil {
		return root, fs, vdata, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return root, fs, vdata, err
	}
	return ota.HashRoot(ctx, f, st.Size(), int64(v.HashOffset), progress)
}
