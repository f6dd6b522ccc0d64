package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"time"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/atomicfile"
	"github.com/nodebake/nodebake/internal/firstboot"
	"github.com/nodebake/nodebake/internal/health"
)

// syncWatchCmd does the guide's "activate mempool & reduce dbcache after a
// full sync" by itself: it waits until bitcoind leaves the initial block
// download, records that on /data, renders bitcoin.conf for the synced
// phase and restarts bitcoind once. Where Fulcrum waited for bitcoind's
// initial sync (the memory plan of a small machine), the agent's run leaves
// fulcrum.service's condition, and this starts Fulcrum.
// nodebake-sync-watch.service runs it until the marker exists.
func syncWatchCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nodectl sync-watch", flag.ContinueOnError)
	// A getblockchaininfo every 30 s costs nothing, and Fulcrum, where it
	// waits, starts that much sooner after the sync.
	every := fs.Duration("interval", 30*time.Second, "how often to ask bitcoind")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("must run as root")
	}
	if _, err := os.Stat(firstboot.SyncedMarker); err == nil {
		fmt.Fprintln(stdout, "bitcoind was already synced: nothing to do")
		return nil
	}
	for {
		r := health.Check(context.Background(), health.Default())
		if r.Bitcoind.OK && r.Bitcoind.Synced {
			break
		}
		fmt.Fprintf(stdout, "waiting for bitcoind's initial block download: %s\n", r.Bitcoind.Detail)
		time.Sleep(*every)
	}
	// The marker comes last: the unit runs until it exists, so a run cut
	// short (the service stopped, a crash) is done again from the start,
	// and every step before it can be repeated.
	fmt.Fprintln(stdout, "bitcoind is synced: lowering dbcache, turning the mempool on, restarting bitcoind once")
	r, err := firstboot.Run(firstboot.Config{Root: "/", Owners: firstboot.SystemOwners(), Log: stdout, Synced: true})
	if err != nil {
		return err
	}
	if out, err := exec.Command("systemctl", "try-restart", "bitcoind.service").CombinedOutput(); err != nil {
		return fmt.Errorf("restart bitcoind: %v: %s", err, out)
	}
	kinds, err := imageServices(contract.ManifestPath)
	if err != nil {
		return err
	}
	if slices.Contains(kinds, contract.Fulcrum) && r.FulcrumMayStart {
		fmt.Fprintln(stdout, "starting Fulcrum, which waited for bitcoind's initial sync")
		if out, err := exec.Command("systemctl", "start", "fulcrum.service").CombinedOutput(); err != nil {
			return fmt.Errorf("start fulcrum: %v: %s (see `journalctl -u fulcrum`; `sudo systemctl start fulcrum` retries)", err, out)
		}
	}
	stamp := time.Now().UTC().Format(time.RFC3339) + "\n"
	return atomicfile.Write(firstboot.SyncedMarker, []byte(stamp), 0o644)
}
