package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/otatest"
	"github.com/nodebake/nodebake/ota"
	"github.com/nodebake/nodebake/ota/bundler"
)

// The device accepts a channel's statement only while it is fresh and
// not older than the last it accepted from the source, remembers it on
// /data, and shows it in status.
func TestUpdateChannel(t *testing.T) {
	imgs := images(t, "1.0.0", "2.0.0")
	ctx := context.Background()
	www := t.TempDir()
	srv := otatest.Server(www)
	defer srv.Close()
	b2, _ := bundle(t, imgs["2.0.0"], devPriv)
	stable := filepath.Join(www, "bundles", "stable")
	if err := bundler.PublishDir(ctx, b2, stable, devSigner, nil); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(t.TempDir(), "old")
	if err := os.CopyFS(old, os.DirFS(stable)); err != nil {
		t.Fatal(err)
	}
	web := srv.URL + "/bundles/stable/"
	root := fakeDevice(t, imgs["1.0.0"], devKey, web)

	out := mustRun(t, "update", "check", "-root", root)
	if !strings.Contains(out, "channel "+web+": node 2.0.0, counter 1, signed ") || !strings.Contains(out, "update available: node 2.0.0") {
		t.Errorf("check:\n%s", out)
	}
	status := mustRun(t, "update", "status", "-root", root)
	if !strings.Contains(status, "channel    "+web+": 2.0.0, counter 1, signed ") || !strings.Contains(status, "expires in 6 days (") {
		t.Errorf("status:\n%s", status)
	}
	var state map[string]ota.ChannelState
	if err := json.Unmarshal(readFile(t, filepath.Join(root, contract.ChannelStatePath)), &state); err != nil || state[web].Counter != 1 {
		t.Errorf("%s: %+v, %v", contract.ChannelStatePath, state, err)
	}

	// The publisher refreshes; a mirror then serves the older statement.
	if _, err := bundler.RefreshDir(stable, devSigner); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, "update", "check", "-root", root); !strings.Contains(out, "counter 2") {
		t.Errorf("check after the refresh:\n%s", out)
	}
	if err := os.RemoveAll(stable); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(stable, os.DirFS(old)); err != nil {
		t.Fatal(err)
	}
	mustFail(t, "update channel metadata counter 1 is lower than 2", "update", "check", "-root", root)
	mustFail(t, "update channel metadata counter 1 is lower than 2", "update", "apply", "-root", root)
	wantEntries(t, root, "nodebake-a.conf")

	// A statement that expired three days ago.
	stale := bundler.Signer{Key: devPriv, Now: time.Now().Add(-10 * 24 * time.Hour)}
	if err := bundler.PublishDir(ctx, b2, filepath.Join(www, "bundles", "stale"), stale, nil); err != nil {
		t.Fatal(err)
	}
	mustFail(t, "update channel metadata expired 3 days ago (", "update", "apply", "-root", root, "-source", srv.URL+"/bundles/stale/")

	// Plain http only on an image that allows it.
	if err := os.Remove(filepath.Join(root, contract.UpdateInsecurePath)); err != nil {
		t.Fatal(err)
	}
	mustFail(t, "plain http", "update", "check", "-root", root)
}

// A device built with key A takes a channel signed by B once the channel
// carries the rotation A→B, and from then on trusts B alone, whichever
// image runs: the rotation is kept on /data.
func TestUpdateKeyRotation(t *testing.T) {
	imgs := images(t, "1.0.0", "2.0.0")
	ctx := context.Background()
	www := t.TempDir()
	srv := otatest.Server(www)
	defer srv.Close()
	newKey, newPriv := ota.GenerateKey()
	b2, _ := bundle(t, imgs["2.0.0"], newPriv)
	_, signedByOld := bundle(t, imgs["2.0.0"], devPriv)
	rotated := bundler.Signer{Key: newPriv, Rotations: []ota.Rotation{ota.RotateKey(devPriv, newKey, time.Now())}}
	if err := bundler.PublishDir(ctx, b2, filepath.Join(www, "bundles", "rotated"), rotated, nil); err != nil {
		t.Fatal(err)
	}
	if err := bundler.PublishDir(ctx, b2, filepath.Join(www, "bundles", "plain"), bundler.Signer{Key: newPriv}, nil); err != nil {
		t.Fatal(err)
	}

	root := fakeDevice(t, imgs["1.0.0"], devKey, srv.URL+"/bundles/plain/")
	mustFail(t, "update channel statement is signed by key "+ota.KeyID(newKey)+", but this device accepts only key "+ota.KeyID(devKey), "update", "check", "-root", root)

	root = fakeDevice(t, imgs["1.0.0"], devKey, srv.URL+"/bundles/rotated/")
	out := mustRun(t, "update", "apply", "-root", root)
	for _, want := range []string{"update key rotated: key " + ota.KeyID(devKey) + " → key " + ota.KeyID(newKey), "slot b holds node 2.0.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply lacks %q:\n%s", want, out)
		}
	}
	status := mustRun(t, "update", "status", "-root", root)
	if !strings.Contains(status, "update key "+ota.FormatPublicKey(newKey)) || !strings.Contains(status, "rotated from the image's key "+ota.KeyID(devKey)) {
		t.Errorf("status:\n%s", status)
	}
	// The old key is no longer trusted, not even for a bundle file.
	mustFail(t, "but this device accepts only key "+ota.KeyID(newKey), "update", "apply", "-root", root, "-retry-failed", signedByOld)
	// The channel without the rotation is fine now.
	if out := mustRun(t, "update", "check", "-root", root, "-source", srv.URL+"/bundles/plain/"); !strings.Contains(out, "update available: node 2.0.0") {
		t.Errorf("check of the unrotated channel after the rotation:\n%s", out)
	}
}

// Two runs of nodectl update never overlap: while one holds the lock,
// apply, check and rollback are refused, and status still reads.
func TestUpdateLock(t *testing.T) {
	imgs := images(t, "1.0.0", "2.0.0")
	root := fakeDevice(t, imgs["1.0.0"], devKey, "")
	_, dir := bundle(t, imgs["2.0.0"], devPriv)
	unlock, err := ota.Lock(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"update", "apply", dir}, {"update", "check", dir}, {"rollback"}} {
		mustFail(t, "another nodectl update (apply, check or rollback) is running and holds "+contract.UpdateLockPath, append(args, "-root", root)...)
	}
	mustRun(t, "update", "status", "-root", root)
	wantEntries(t, root, "nodebake-a.conf")
	unlock()
	mustRun(t, "update", "apply", "-root", root, dir)
	wantEntries(t, root, "nodebake-a.conf", "nodebake-b+3.conf")
}

// A bundle signed by the right key for the right image name, but whose
// PARTUUIDs are not this disk's, is refused.
func TestUpdateLayout(t *testing.T) {
	imgs := images(t, "1.0.0", "2.0.0")
	root := fakeDevice(t, imgs["1.0.0"], devKey, "")
	b, dir := bundle(t, imgs["2.0.0"], devPriv)
	m := b.Manifest
	m.Partitions.RootB = "0b6d0c6a-0000-4000-8000-000000000001"
	m.Partitions.Data = "0b6d0c6a-0000-4000-8000-000000000002"
	raw, sig, err := ota.Seal(&m, devPriv)
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, ota.ManifestFile, string(raw))
	write(t, dir, ota.SignatureFile, string(sig))
	// Where the bundle would put slot b, so that only the check stops it.
	write(t, root, "dev/disk/by-partuuid/"+m.Partitions.RootB, "")
	if err := os.Truncate(filepath.Join(root, "dev/disk/by-partuuid", m.Partitions.RootB), otatest.SlotSize); err != nil {
		t.Fatal(err)
	}
	mustFail(t, "refusing a bundle for another disk layout", "update", "apply", "-root", root, dir)
	wantEntries(t, root, "nodebake-a.conf")
}
