package spec

import (
	"strings"
	"testing"
)

const testUpdateKey = "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

func TestUpdate(t *testing.T) {
	s, err := Parse([]byte(minimal+"update:\n  public_key: "+testUpdateKey+"\n  source: oci://ghcr.io/me/minibolt:stable\n"), "image.yaml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if s.Update == nil || s.Update.PublicKey != testUpdateKey || s.Update.Source != "oci://ghcr.io/me/minibolt:stable" {
		t.Errorf("update = %+v", s.Update)
	}
	// A web folder, or no source at all (bundles copied onto the device).
	for _, extra := range []string{"  source: https://updates.example.org/minibolt/\n", ""} {
		if _, err := Parse([]byte(minimal+"update:\n  public_key: "+testUpdateKey+"\n"+extra), "image.yaml", t.TempDir()); err != nil {
			t.Errorf("%q: %v", extra, err)
		}
	}
	// Plain HTTP only when marked insecure (a lab network).
	s, err = Parse([]byte(minimal+"update:\n  public_key: "+testUpdateKey+"\n  source: http://10.0.2.100/bundles/\n  insecure: true\n"), "image.yaml", t.TempDir())
	if err != nil || !s.Update.Insecure {
		t.Errorf("insecure http source: %+v, %v", s.Update, err)
	}
	// A schedule turns on automatic updates.
	s, err = Parse([]byte(minimal+"update:\n  public_key: "+testUpdateKey+"\n  source: oci://ghcr.io/me/minibolt:stable\n  schedule: sat,sun 22:00-02:00\n"), "image.yaml", t.TempDir())
	if err != nil || s.Update.Schedule != "sat,sun 22:00-02:00" {
		t.Errorf("schedule: %+v, %v", s.Update, err)
	}
	// No update section: updates are off.
	if s, err := Parse([]byte(minimal), "image.yaml", t.TempDir()); err != nil || s.Update != nil {
		t.Errorf("without update: %+v, %v", s.Update, err)
	}
}

func TestUpdateRejects(t *testing.T) {
	for name, c := range map[string]struct{ yaml, want string }{
		"key not base64": {"update:\n  public_key: ed25519:not-a-key\n",
			`image.yaml:5: update.public_key: update key "ed25519:not-a-key": want 32 base64-encoded bytes after "ed25519:"`},
		"ssh key instead": {"update:\n  public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHvP8e0k2bM4c5qA9xg0Tq0Jb8q3N1c0xQm6a4M8l1aH\n",
			"image.yaml:5: update.public_key: update key \"ssh-ed25519 AAAA"},
		"key missing": {"update:\n  source: oci://ghcr.io/me/minibolt:stable\n",
			"image.yaml:4: update.public_key: missing: updates need the public key `nodebake keygen` wrote"},
		"source without scheme": {"update:\n  public_key: " + testUpdateKey + "\n  source: ghcr.io/me/minibolt:stable\n",
			`image.yaml:6: update.source: update source "ghcr.io/me/minibolt:stable": want oci://REGISTRY/REPOSITORY:TAG or the https:// URL`},
		"source without tag": {"update:\n  public_key: " + testUpdateKey + "\n  source: oci://ghcr.io/me/minibolt\n",
			"image.yaml:6: update.source: update source \"oci://ghcr.io/me/minibolt\": want oci://REGISTRY/REPOSITORY:TAG"},
		"source http": {"update:\n  public_key: " + testUpdateKey + "\n  source: http://updates.example.org/minibolt/\n",
			`image.yaml:6: update.source: update source "http://updates.example.org/minibolt/": plain http`},
		"source ftp": {"update:\n  public_key: " + testUpdateKey + "\n  source: ftp://example.org/x/\n",
			"image.yaml:6: update.source: "},
		"schedule without source": {"update:\n  public_key: " + testUpdateKey + "\n  schedule: daily 03:00-05:00\n",
			"image.yaml:6: update.schedule: automatic updates need update.source"},
		"schedule bad": {"update:\n  public_key: " + testUpdateKey + "\n  source: oci://ghcr.io/me/minibolt:stable\n  schedule: nightly\n",
			`image.yaml:7: update.schedule: schedule "nightly": want "daily HH:MM-HH:MM"`},
		"schedule injects": {"update:\n  public_key: " + testUpdateKey + "\n  source: oci://ghcr.io/me/minibolt:stable\n  schedule: \"daily 03:00-05:00\\n[Service]\"\n",
			`image.yaml:7: update.schedule: schedule "daily 03:00-05:00\n[Service]": want`},
		"unknown field": {"update:\n  public_key: " + testUpdateKey + "\n  channel: beta\n",
			`image.yaml:6: update.channel: unknown field "channel"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(minimal+c.yaml), "image.yaml", t.TempDir())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, c.want)
			}
		})
	}
}
