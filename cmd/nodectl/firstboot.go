package main

import (
	"errors"
	"flag"
	"io"
	"os"

	"github.com/nodebake/nodebake/internal/firstboot"
)

func firstbootCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nodectl firstboot", flag.ContinueOnError)
	root := fs.String("root", "/", "the root filesystem to work on; anything but / also skips growing /data")
	grow := fs.Bool("grow-data", true, "grow the data partition and its filesystem to fill the disk")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("must run as root: sudo nodectl firstboot")
	}
	_, err := firstboot.Run(firstboot.Config{
		Root:      *root,
		Owners:    firstboot.SystemOwners(),
		Log:       stdout,
		GrowData:  *grow && *root == "/",
		Passwords: firstboot.SystemPasswords(),
	})
	return err
}
