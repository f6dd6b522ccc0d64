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
		fmt.Fprintln(stdout, msg) // the journal
		// And every console (the screen and the serial port) through the
		// kernel log, as a warning: someone at the console sees why.
		if k, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
			fmt.Fprintf(k, "<4>nodectl disk-guard: %.900s\n", msg)
			k.Close()
		}
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
