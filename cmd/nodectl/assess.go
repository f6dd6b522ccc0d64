package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/dataformat"
	"github.com/nodebake/nodebake/internal/firstboot"
	"github.com/nodebake/nodebake/internal/health"
)

// assessCmd is the boot assessment nodebake-health.service runs before
// boot-complete.target: first boot must have succeeded, and the services
// the image has must answer within the wait. An image without bitcoind or
// Fulcrum is judged on its first boot alone.
func assessCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nodectl assess", flag.ContinueOnError)
	wait := fs.Duration("wait", 0, "keep checking the services until they answer or this much time has passed (e.g. 10m)")
	report := fs.String("report", firstboot.ReportPath, "the first-boot agent's report")
	upgradeWait := fs.Duration("upgrade-wait", 0, "the wait instead, while a data upgrade is under way (Fulcrum's --db-upgrade can take an hour)")
	manifest := fs.String("manifest", contract.ManifestPath, "the image's manifest (which services it has)")
	formats := fs.String("formats", contract.DataFormatsPath, "the record of the data formats on /data")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fb, err := firstBootSucceeded(*report)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "first boot: all steps succeeded")
	kinds, err := imageServices(*manifest)
	if err != nil {
		return err
	}
	kinds = waitingByDesign(fb, kinds, stdout)
	if len(kinds) == 0 {
		fmt.Fprintln(stdout, "services:   this image has neither bitcoind nor Fulcrum; nothing else to check")
		return nil
	}
	ctx := context.Background()
	if w := assessWait(*wait, *upgradeWait, *formats, stdout); w > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w)
		defer cancel()
	}
	r, err := awaitServices(ctx, health.Default(), kinds, 5*time.Second)
	fmt.Fprint(stdout, describe(r, kinds))
	return err
}

// assessWait is how long the services get to answer: wait, or upgradeWait
// while an upgrade of the data is under way. Fulcrum upgrading a real 1.x
// database takes up to an hour, ignores signals meanwhile and leaves the
// database corrupt if killed, so a boot that upgrades must not be judged
// (and rebooted) on the usual ten minutes.
func assessWait(wait, upgradeWait time.Duration, formats string, stdout io.Writer) time.Duration {
	if upgradeWait <= wait {
		return wait
	}
	rec, err := dataformat.Load(formats)
	if err != nil || len(rec.Upgrades) == 0 {
		return wait
	}
	for kind, u := range rec.Upgrades {
		fmt.Fprintf(stdout, "data:       %s upgrades from format %d to %d: waiting up to %s\n", kind, u.From, u.To, upgradeWait)
	}
	return upgradeWait
}

// firstBootSucceeded reads this boot's report of the first-boot agent.
func firstBootSucceeded(path string) (*firstboot.Report, error) {
	r, err := firstboot.ReadReport(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("first boot: no report at %s: the agent did not run or did not finish this boot (journalctl -u nodebake-firstboot)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("first boot: %w", err)
	}
	if failed := r.Failed(); len(failed) > 0 {
		var names []string
		for _, s := range failed {
			names = append(names, s.Name)
		}
		return nil, fmt.Errorf("first boot: %d step(s) failed: %s (nodectl status)", len(failed), strings.Join(names, ", "))
	}
	return r, nil
}

// waitingByDesign drops Fulcrum from the services to check while it waits,
// by the memory plan, for bitcoind's initial sync: it is stopped on
// purpose, and a slot must not be rolled back for that. A Fulcrum that
// runs is checked; one still indexing answers on its stats endpoint.
func waitingByDesign(r *firstboot.Report, kinds []string, stdout io.Writer) []string {
	if r.FulcrumMayStart || !slices.Contains(kinds, contract.Fulcrum) {
		return kinds
	}
	fmt.Fprintf(stdout, "%-11s waits by design: %s\n", "fulcrum:", r.Settings.Plan.Why)
	return slices.DeleteFunc(slices.Clone(kinds), func(k string) bool { return k == contract.Fulcrum })
}

// imageServices lists the service artifacts the image's manifest records.
func imageServices(path string) ([]string, error) {
	m, err := contract.ReadManifest(path)
	if err != nil {
		return nil, err
	}
	var kinds []string
	for _, k := range []string{contract.BitcoinCore, contract.Fulcrum} {
		if m.Has(k) {
			kinds = append(kinds, k)
		}
	}
	return kinds, nil
}

// awaitServices checks until the services of kinds are up: once if ctx
// has no deadline, else every interval until it passes. It returns the
// last report, and an error if they were not all up.
func awaitServices(ctx context.Context, c health.Config, kinds []string, interval time.Duration) (health.Report, error) {
	_, waiting := ctx.Deadline()
	var last health.Report
	for i := 0; ; i++ {
		r := health.Check(ctx, c)
		if up(r, kinds) {
			return r, nil
		}
		// A check cut short by the deadline says less than the one before.
		if ctx.Err() == nil || i == 0 {
			last = r
		}
		if !waiting {
			return last, errors.New("the node's services are not all up (see above)")
		}
		select {
		case <-ctx.Done():
			return last, errors.New("the node's services did not all answer in time (see above)")
		case <-time.After(interval):
		}
	}
}

func up(r health.Report, kinds []string) bool {
	for _, k := range kinds {
		if (k == contract.BitcoinCore && !r.Bitcoind.OK) || (k == contract.Fulcrum && !r.Fulcrum.OK) {
			return false
		}
	}
	return true
}

// describe is the report's lines for the services of kinds.
func describe(r health.Report, kinds []string) string {
	var b strings.Builder
	for _, k := range kinds {
		name, st := "bitcoind", r.Bitcoind
		if k == contract.Fulcrum {
			name, st = "fulcrum", r.Fulcrum
		}
		if st.OK {
			fmt.Fprintf(&b, "%-11s up: %s\n", name+":", st.Detail)
		} else {
			fmt.Fprintf(&b, "%-11s down: %s\n", name+":", strings.TrimPrefix(st.Err.Error(), name+": "))
		}
	}
	return b.String()
}
