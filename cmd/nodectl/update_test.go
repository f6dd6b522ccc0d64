package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/disk"
	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

var devKey, devPriv = ota.GenerateKey()

// devSigner signs the channels the tests publish.
var devSigner = bundler.Signer{Key: devPriv}

// images builds test images of the given versions once per test.
func images(t *testing.T, versions ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{}
	for _, v := range versions {
		out[v] = otatest.Image{Name: "node", Version: v}.Build(t, dir)
	}
	return out
}

// bundle makes a bundle folder from an image, signed with priv.
func bundle(t *testing.T, img string, priv ed25519.PrivateKey) (*ota.Bundle, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	b, err := bundler.Create(context.Background(), img, priv, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b, dir
}

// fakeDevice lays out a folder as a device that runs img from slot a: its
// kernel command line and manifest, the update key and source, the ESP
// (a plain folder) with slot a's entry, and slot b's partition (a file of
// the slot's size under dev/disk/by-partuuid). Its image sets
// update.insecure: the test servers speak plain HTTP.
func fakeDevice(t *testing.T, img string, key ed25519.PublicKey, source string) string {
	t.Helper()
	root := t.TempDir()
	info, err := disk.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	e := info.ESP.Entries[0]
	slot, err := contract.Parse(e.Options)
	if err != nil {
		t.Fatal(err)
	}
	var id *contract.Manifest
	for _, p := range info.Partitions {
		if p.Name == contract.RootA {
			write(t, root, contract.ManifestPath, string(p.Manifest))
			if id, err = contract.ReadManifest(filepath.Join(root, contract.ManifestPath)); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(t, root, "/proc/cmdline", "BOOT_IMAGE=x "+e.Options+"\n")
	write(t, root, contract.ESPMount+"/loader/entries/nodebake-a.conf", string(contract.EntryConf(id.Name, id.Version, otatest.KernelArgs, slot)))
	if key != nil {
		if err := ota.SavePublicKey(filepath.Join(root, contract.UpdateKeyPath), key); err != nil {
			t.Fatal(err)
		}
	}
	if source != "" {
		write(t, root, contract.UpdateSourcePath, source+"\n")
	}
	write(t, root, contract.UpdateInsecurePath, "true\n")
	part := filepath.Join(root, "dev/disk/by-partuuid", contract.UUID("node", contract.RootB))
	write(t, root, strings.TrimPrefix(part, root), "")
	if err := os.Truncate(part, otatest.SlotSize); err != nil {
		t.Fatal(err)
	}
	return root
}

func write(t *testing.T, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// nodectl runs the command line and returns its exit code and output.
func nodectl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errs bytes.Buffer
	code := run(args, &out, &errs)
	return code, out.String(), errs.String()
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := nodectl(t, args...)
	if code != 0 {
		t.Fatalf("nodectl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func mustFail(t *testing.T, want string, args ...string) {
	t.Helper()
	code, out, errs := nodectl(t, args...)
	if code == 0 || !strings.Contains(errs, want) {
		t.Fatalf("nodectl %s: exit %d, want a refusal containing %q\n%s%s", strings.Join(args, " "), code, want, out, errs)
	}
}

func entryFiles(t *testing.T, root string) []string {
	t.Helper()
	names, err := ota.ESPDir(filepath.Join(root, contract.ESPMount)).ReadDir("loader/entries")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

func wantEntries(t *testing.T, root string, want ...string) {
	t.Helper()
	if got := entryFiles(t, root); !slices.Equal(got, want) {
		t.Fatalf("boot entries %v, want %v", got, want)
	}
}

// A bundle file copied onto the device is installed into the other slot;
// once that slot fails to boot, its version is remembered and refused.
func TestUpdateApplyFile(t *testing.T) {
	imgs := images(t, "1.0.0", "2.0.0")
	root := fakeDevice(t, imgs["1.0.0"], devKey, "")
	b, dir := bundle(t, imgs["2.0.0"], devPriv)
	tarFile := filepath.Join(t.TempDir(), "node-2.0.0.tar")
	if err := bundler.WriteTar(b, tarFile); err != nil {
		t.Fatal(err)
	}

	out := mustRun(t, "update", "check", "-root", root, tarFile)
	if !strings.Contains(out, "update available: node 2.0.0 (running 1.0.0) from "+tarFile) {
		t.Errorf("check:\n%s", out)
	}
	// Flags may follow the bundle.
	out = mustRun(t, "update", "apply", tarFile, "-root", root)
	for _, want := range []string{"a bundle file you chose: no channel statement vouches that it is current", "checking the bundle", "check root.img: done", "installing node 2.0.0 into slot b",
		"write root: done", "check root: done", "write vmlinuz: done", "slot b holds node 2.0.0 and boots next, on trial"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	wantEntries(t, root, "nodebake-a.conf", "nodebake-b+3.conf")
	for _, f := range []string{ota.KernelFile, ota.InitrdFile} {
		if !sameBytes(t, filepath.Join(root, contract.ESPMount, "nodebake/b", f), filepath.Join(dir, f)) {
			t.Errorf("the ESP's nodebake/b/%s is not the bundle's", f)
		}
	}
	slotB := readFile(t, filepath.Join(root, "dev/disk/by-partuuid", contract.UUID("node", contract.RootB)))
	if !bytes.HasPrefix(slotB, readFile(t, filepath.Join(dir, ota.RootFile))) {
		t.Error("slot b does not hold the bundle's root.img")
	}

	status := mustRun(t, "update", "status", "-root", root)
	for _, want := range []string{"running    node 1.0.0 from slot a", "nodebake-b+3.conf", "pending", "next boot  nodebake-b+3.conf",
		"update key " + ota.FormatPublicKey(devKey), "source     none"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}

	// systemd-boot's rename of slot b's entry for its last try was cut
	// off: both names are on the ESP. The one with a try left stands for
	// the slot, so nothing failed yet.
	esp := ota.ESPDir(filepath.Join(root, contract.ESPMount))
	if err := esp.Rename("loader/entries/nodebake-b+3.conf", "loader/entries/nodebake-b+1-2.conf"); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, contract.ESPMount), "loader/entries/nodebake-b+0-3.conf", string(readFile(t, filepath.Join(root, contract.ESPMount, "loader/entries/nodebake-b+1-2.conf"))))
	if status = mustRun(t, "update", "status", "-root", root); strings.Contains(status, "failed ") {
		t.Errorf("status with both names of a try:\n%s", status)
	}
	if _, err := os.Stat(filepath.Join(root, contract.FailedVersionsPath)); err == nil {
		t.Errorf("%s written while slot b has a try left", contract.FailedVersionsPath)
	}

	// Slot b used up its tries; systemd-boot fell back to slot a.
	if err := esp.Remove("loader/entries/nodebake-b+1-2.conf"); err != nil {
		t.Fatal(err)
	}
	status = mustRun(t, "update", "status", "-root", root)
	if !strings.Contains(status, "failed     2.0.0") || !strings.Contains(status, "next boot  nodebake-a.conf") {
		t.Errorf("status after a failed trial:\n%s", status)
	}
	if got := string(readFile(t, filepath.Join(root, contract.FailedVersionsPath))); got != "2.0.0\n" {
		t.Errorf("%s holds %q", contract.FailedVersionsPath, got)
	}
	mustFail(t, "version 2.0.0 already failed to boot on this device", "update", "apply", "-root", root, tarFile)
	mustFail(t, "slot b failed to boot (entry nodebake-b+0-3.conf): refusing to roll back", "rollback", "-root", root)
	wantEntries(t, root, "nodebake-a.conf", "nodebake-b+0-3.conf")

	// Asked for explicitly, it is installed again. Once blessed, rollback
	// (to the newer slot, from a system still running slot a) gives it
	// three fresh tries.
	mustRun(t, "update", "apply", "-retry-failed", "-root", root, dir)
	wantEntries(t, root, "nodebake-a.conf", "nodebake-b+3.conf")
	if err := esp.Rename("loader/entries/nodebake-b+3.conf", "loader/entries/nodebake-b.conf"); err != nil {
		t.Fatal(err)
	}
	out = mustRun(t, "update", "rollback", "-root", root)
	if !strings.Contains(out, "slot b (2.0.0) boots next, with 3 tries") {
		t.Errorf("rollback:\n%s", out)
	}
	wantEntries(t, root, "nodebake-a.conf", "nodebake-b+3.conf")
}

// The device finds updates at its source: a registry or a web folder.
// A downgrade is refused unless asked for.
func TestUpdateFromSource(t *testing.T) {
	imgs := images(t, "1.0.0", "2.0.0")
	ctx := context.Background()
	www := t.TempDir()
	srv := otatest.Server(www)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	b1, _ := bundle(t, imgs["1.0.0"], devPriv)
	b2, _ := bundle(t, imgs["2.0.0"], devPriv)
	if _, err := bundler.Publish(ctx, b2, host+"/node/stable:latest", devSigner, nil); err != nil {
		t.Fatal(err)
	}
	if err := bundler.PublishDir(ctx, b1, filepath.Join(www, "bundles", "v1"), devSigner, nil); err != nil {
		t.Fatal(err)
	}
	oci, web := "oci://"+host+"/node/stable:latest", srv.URL+"/bundles/v1/"

	root := fakeDevice(t, imgs["1.0.0"], devKey, oci)
	out := mustRun(t, "update", "check", "-root", root)
	if !strings.Contains(out, "update available: node 2.0.0 (running 1.0.0) from "+oci) || !strings.Contains(out, "sudo nodectl update apply\n") {
		t.Errorf("check:\n%s", out)
	}
	if out = mustRun(t, "update", "check", "-root", root, "-source", web); !strings.Contains(out, "no update: "+web+" offers node 1.0.0, this device runs 1.0.0") {
		t.Errorf("check of the same version:\n%s", out)
	}
	downloads := t.TempDir()
	out = mustRun(t, "update", "apply", "-root", root, "-download-dir", downloads)
	for _, want := range []string{"downloading node 2.0.0 (running 1.0.0) from " + oci, "root.img: done", "slot b holds node 2.0.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	if left, _ := os.ReadDir(downloads); len(left) != 0 {
		t.Errorf("the download was left in %s", downloads)
	}
	wantEntries(t, root, "nodebake-a.conf", "nodebake-b+3.conf")

	// A device running 2.0.0 offered 1.0.0.
	root = fakeDevice(t, imgs["2.0.0"], devKey, web)
	if out = mustRun(t, "update", "check", "-root", root); !strings.Contains(out, "no update: "+web+" offers node 1.0.0, this device runs 2.0.0") {
		t.Errorf("check of an older version:\n%s", out)
	}
	mustFail(t, "version 1.0.0 is older than the running 2.0.0: refusing a downgrade unless it is explicitly allowed", "update", "apply", "-root", root)
	wantEntries(t, root, "nodebake-a.conf")
	mustRun(t, "update", "apply", "-root", root, "-allow-downgrade")
	// The running entry is set aside, so that the older slot boots next.
	wantEntries(t, root, "nodebake-a+0.conf", "nodebake-b+3.conf")
}

func TestUpdateRefusals(t *testing.T) {
	imgs := images(t, "1.0.0", "2.0.0")
	_, signedByOther := bundle(t, imgs["2.0.0"], func() ed25519.PrivateKey { _, k := ota.GenerateKey(); return k }())
	root := fakeDevice(t, imgs["1.0.0"], devKey, "")
	mustFail(t, "but this device accepts only key "+ota.KeyID(devKey), "update", "apply", "-root", root, signedByOther)
	mustFail(t, "this image names no update source", "update", "check", "-root", root)
	mustFail(t, `update source "ftp://x/": want oci://`, "update", "check", "-root", root, "-source", "ftp://x/")
	mustFail(t, "give a bundle or -source, not both", "update", "apply", "-root", root, "-source", "https://x/", signedByOther)
	mustFail(t, "want at most one bundle", "update", "check", "-root", root, "a", "b")
	wantEntries(t, root, "nodebake-a.conf")

	keyless := fakeDevice(t, imgs["1.0.0"], nil, "")
	mustFail(t, "updates are off: this image has no update key", "update", "apply", "-root", keyless, signedByOther)
	if out := mustRun(t, "update", "status", "-root", keyless); !strings.Contains(out, "updates    off") {
		t.Errorf("status without a key:\n%s", out)
	}

	mustFail(t, "want a command", "update")
	mustFail(t, `unknown command "upgrade"`, "update", "upgrade")
}

func sameBytes(t *testing.T, a, b string) bool {
	t.Helper()
	return bytes.Equal(readFile(t, a), readFile(t, b))
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
