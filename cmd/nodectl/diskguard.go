package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/nodebake/nodebake/internal/diskguard"
)

func diskGuardCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nodectl disk-guard", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("must run as root (nodebake-disk-guard.timer runs it every minute)")
	}
	u, err := diskguard.Stat("/data")
	if err != nil {
		return err
	}
	act, msg, err := diskguard.Check(u, diskguard.Marker, systemdServices{}, time.Now())
	if act != diskguard.None {
		// The unit sends this to the console as well as the journal.
		fmt.Fprintln(stdout, msg)
	}
	return err
}

// systemdServices stops and starts bitcoind and Fulcrum through systemd:
// Fulcrum, which needs bitcoind, stops first, and SIGINT (their units'
// KillSignal) has each flush its database.
type systemdServices struct{}

func (systemdServices) Stop() error {
	if out, err := exec.Command("systemctl", "stop", "fulcrum.service", "bitcoind.service").CombinedOutput(); err != nil {
		return fmt.Errorf("systemctl stop: %v: %s", err, out)
	}
	return nil
}

func (systemdServices) Start() error {
	// Fulcrum's own condition (the memory plan) still decides whether it runs.
	if out, err := exec.Command("systemctl", "start", "bitcoind.service", "fulcrum.service").CombinedOutput(); err != nil {
		return fmt.Errorf("systemctl start: %v: %s", err, out)
	}
	return nil
}
