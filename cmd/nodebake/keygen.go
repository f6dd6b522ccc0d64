package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nodebake/nodebake/ota"
)

func cmdKeygen(_ context.Context, args []string) error {
	return keygen(args, os.Stdout)
}

func keygen(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	out := fs.String("o", "keys/update", "the private key file; the public key goes beside it as FILE.pub")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("keygen: unexpected argument %q (the key file is given with -o)", fs.Arg(0))
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

put this in image.yaml to build images that take updates signed with it:
update:
  public_key: %s
  source: oci://REGISTRY/REPOSITORY:TAG   # or the https:// URL of a folder; leave out to apply bundle files only
`, *out, *out, ota.KeyID(pub), ota.FormatPublicKey(pub))
	return nil
}
