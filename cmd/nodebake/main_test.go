package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/disk"
)

// Asking for help is not an error: usage on stdout, exit 0, for nodebake
// and for each command's flags.
func TestHelpExitsZero(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "help"} {
		var out, errs bytes.Buffer
		if code := run(context.Background(), []string{arg}, &out, &errs); code != 0 || !strings.Contains(out.String(), "nodebake flash") {
			t.Errorf("nodebake %s: exit %d, stdout %q", arg, code, out.String())
		}
	}
	for name := range commands {
		var out, errs bytes.Buffer
		if code := run(context.Background(), []string{name, "-h"}, &out, &errs); code != 0 {
			t.Errorf("nodebake %s -h: exit %d\n%s", name, code, errs.String())
		}
	}
	var out, errs bytes.Buffer
	if code := run(context.Background(), nil, &out, &errs); code != 2 {
		t.Errorf("nodebake without a command: exit %d, want 2", code)
	}
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errs); code != 2 || !strings.Contains(errs.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %s", code, errs.String())
	}
}

// smallImage is a GPT disk with nodebake's partitions, root-a holding data.
func smallImage(t *testing.T) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	root := make([]byte, 1<<20)
	rand.Read(root)
	rootFile := filepath.Join(dir, "root")
	os.WriteFile(rootFile, root, 0o644)
	img := filepath.Join(dir, "minibolt.img")
	err := disk.Write(img, "44444444-4444-4444-8444-444444444444", []disk.Partition{
		{Name: contract.ESP, Type: gpt.EFISystemPartition, UUID: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", Size: 1 << 20},
		{Name: contract.RootA, Type: gpt.LinuxRootX86_64, UUID: "11111111-1111-4111-8111-111111111111", Size: 2 << 20, Content: rootFile},
		{Name: contract.RootB, Type: gpt.LinuxRootX86_64, UUID: "22222222-2222-4222-8222-222222222222", Size: 2 << 20},
		{Name: contract.Data, Type: gpt.LinuxFilesystem, UUID: "33333333-3333-4333-8333-333333333333", Size: 4 << 20},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return img, b
}

func TestFlashCommand(t *testing.T) {
	img, want := smallImage(t)
	dir := t.TempDir()
	ctx := context.Background()

	// Not confirmed: nothing written, not even a new file.
	dev := filepath.Join(dir, "disk.img")
	var out bytes.Buffer
	err := runFlash(ctx, []string{img, dev}, "/", strings.NewReader("no\n"), &out)
	if err == nil || !strings.Contains(err.Error(), "not confirmed") {
		t.Fatalf("answer no: %v", err)
	}
	if _, err := os.Stat(dev); !os.IsNotExist(err) {
		t.Fatalf("answer no: %s exists (%v)", dev, err)
	}
	if !strings.Contains(out.String(), "(regular file)") || !strings.Contains(out.String(), "Type yes") {
		t.Errorf("the question shows %q", out.String())
	}

	// Confirmed: the new file is the image.
	out.Reset()
	if err := runFlash(ctx, []string{img, dev}, "/", strings.NewReader("yes\n"), &out); err != nil {
		t.Fatalf("answer yes: %v\n%s", err, out.String())
	}
	if got, _ := os.ReadFile(dev); !bytes.Equal(got, want) {
		t.Fatal("the flashed file differs from the image")
	}

	// A file too small for the image is refused and left alone.
	small := filepath.Join(dir, "small.img")
	os.WriteFile(small, []byte("old contents"), 0o644)
	err = runFlash(ctx, []string{"--yes", img, small}, "/", strings.NewReader(""), &out)
	if err == nil || !strings.Contains(err.Error(), "the image needs") {
		t.Fatalf("too small a file: %v", err)
	}
	if got, _ := os.ReadFile(small); string(got) != "old contents" {
		t.Errorf("a refused file was changed: %q", got)
	}

	// Not onto the image itself.
	if err := runFlash(ctx, []string{"--yes", img, img}, "/", strings.NewReader(""), &out); err == nil {
		t.Fatal("flashing an image onto itself succeeded")
	}
}
