package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"

	"github.com/nodebake/nodebake/internal/diskguard"
	"github.com/nodebake/nodebake/internal/firstboot"
)

func statusCmd(args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("nodectl status", flag.ContinueOnError)
	path := flags.String("report", firstboot.ReportPath, "the report to show")
	asJSON := flags.Bool("json", false, "print the report as JSON (fields as in "+firstboot.ReportPath+")")
	if err := flags.Parse(args); err != nil {
		return err
	}
	r, err := firstboot.ReadReport(*path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no report at %s: the first-boot agent has not run this boot (see `systemctl status nodebake-firstboot`)", *path)
	}
	if err != nil {
		return err
	}
	if why := diskguard.Reason(diskguard.Marker); why != "" && !*asJSON {
		fmt.Fprintf(stdout, "BITCOIND AND FULCRUM STOPPED: %s\n\n", why)
	}
	if *asJSON {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		if _, err := stdout.Write(append(b, '\n')); err != nil {
			return err
		}
	} else if err := r.WriteText(stdout); err != nil {
		return err
	}
	if n := len(r.Failed()); n > 0 {
		return fmt.Errorf("%d step(s) failed at the last boot", n)
	}
	return nil
}
