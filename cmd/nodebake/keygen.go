package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nodebake/nodebake/ota"
)

func cmdKeygen(_ context.Context, args []string) error {
	return keygen(args, os.Stdout)
}

// rotationFile is where keygen -rotate-from puts the rotations that lead
// to a key, and where publish finds them: beside the key.
func rotationFile(key string) string { return key + ".rotation" }

func keygen(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	out := fs.String("o", "keys/update", "the private key file; the public key goes beside it as FILE.pub")
	from := fs.String("rotate-from", "", "the key the new one replaces: it signs the rotation (FILE.rotation) that devices trusting it follow")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("keygen: unexpected argument %q (the key file is given with -o)", fs.Arg(0))
	}
	var chain []ota.Rotation
	var old ed25519.PrivateKey
	if *from != "" {
		var err error
		if old, err = ota.LoadPrivateKey(*from); err != nil {
			return err
		}
		// The new key's chain is the old key's and one step more, so
		// that devices that trust any older key still get there.
		if chain, err = ota.LoadRotations(rotationFile(*from)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o700); err != nil {
		return err
	}
	pub, priv := ota.GenerateKey()
	if err := ota.SavePrivateKey(*out, priv); err != nil {
		return err
	}
	if err := ota.SavePublicKey(*out+".pub", pub); err != nil {
		return err
	}
	fmt.Fprintf(stdout, `update-signing key %s (mode 0600): keep it secret and backed up; devices built with its public key accept bundles signed by no other
public key         %s.pub (id %s)
`, *out, *out, ota.KeyID(pub))
	if old != nil {
		chain = append(chain, ota.RotateKey(old, pub, time.Now()))
		if err := ota.SaveRotations(rotationFile(*out), chain); err != nil {
			return err
		}
		fmt.Fprintf(stdout, `key rotation       %s (%s, signed by %s)

sign bundles and publish with the new key from now on (nodebake bundle -k %s; nodebake publish -k %s):
publish sends the rotation along, and a device that trusts the old key and gets it from its channel
trusts only the new key from then on. Build new images with the new key:
`, rotationFile(*out), chain[len(chain)-1].Describe(), *from, *out, *out)
	} else {
		fmt.Fprintln(stdout, "\nput this in image.yaml to build images that take updates signed with it:")
	}
	fmt.Fprintf(stdout, `update:
  public_key: %s
  source: oci://REGISTRY/REPOSITORY:TAG   # or the https:// URL of a folder; leave out to apply bundle files only
`, ota.FormatPublicKey(pub))
	return nil
}
