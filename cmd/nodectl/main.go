// Command nodectl is the agent on a nodebake device. `nodectl firstboot`
// runs on every boot (nodebake-firstboot.service) and makes the image right
// for this device; `nodectl status` shows what it found and did.
// `nodectl update` installs new images into the other root slot, and
// `nodectl assess` decides whether a newly installed slot is kept.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
)

// command is one subcommand: it gets its arguments and where to print.
type command struct {
	summary string
	run     func(args []string, stdout io.Writer) error
}

var commands = map[string]command{
	"firstboot":  {"size, configure and key this device (run by nodebake-firstboot.service)", firstbootCmd},
	"status":     {"show what the last `nodectl firstboot` found and did", statusCmd},
	"health":     {"is bitcoind up, and is Fulcrum indexing or serving? (-wait 5m polls)", healthCmd},
	"sync-watch": {"after bitcoind's initial sync, lower dbcache and turn the mempool on (run by nodebake-sync-watch.service)", syncWatchCmd},
	"update":     {"check for, install, show and roll back image updates (nodectl update help)", updateCmd},
	"rollback":   {"boot the other slot next: nodectl update rollback", rollbackCmd},
	"backup":     {"write the device identity (onion keys, TLS and SSH host keys, configs) to an encrypted file: backup -o FILE", backupCmd},
	"restore":    {"put a backup made by `nodectl backup` back on a fresh device and restart the services", restoreCmd},
	"disk-guard": {"stop bitcoind and Fulcrum cleanly before /data fills up (run by nodebake-disk-guard.timer)", diskGuardCmd},
	"connect":    {"how wallets reach this node: addresses, QR codes, the TLS fingerprint (--json, --png DIR)", connectCmd},
	"assess":     {"boot assessment: first boot succeeded and the services answer (run by nodebake-health.service)", assessCmd},
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "nodectl: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	if err := c.run(args[1:], stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // the flag package has printed the command's flags
		}
		fmt.Fprintf(stderr, "nodectl %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: nodectl <command> [flags]")
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
}
