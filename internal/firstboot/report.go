package firstboot

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nodebake/nodebake/internal/bytesize"
)

// ReportPath is where the agent leaves its report on the device; /run is a
// tmpfs, so the report always describes this boot.
const ReportPath = "/run/nodebake/firstboot.json"

// Status is what a step did to one thing.
type Status string

const (
	Unchanged Status = "unchanged"
	Created   Status = "created"
	Changed   Status = "changed"
	Failed    Status = "failed"
	Skipped   Status = "skipped"
)

// Item is one thing a step looked after: a file, a folder, a partition.
type Item struct {
	What   string `json:"what"`
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Step is one job of the agent. Error says what failed and what to do.
type Step struct {
	Name  string `json:"name"`
	Items []Item `json:"items,omitempty"`
	Error string `json:"error,omitempty"`
}

// Report is what one run found and did.
type Report struct {
	Time time.Time `json:"time"`
	// FulcrumSource says where the Fulcrum version came from.
	FulcrumSource string `json:"fulcrum_version_source"`
	// BitcoindSynced is whether bitcoin.conf got the after-sync dbcache.
	BitcoindSynced bool `json:"bitcoind_synced"`
	// FulcrumMayStart is whether the agent left FulcrumMayStart, the
	// condition of fulcrum.service: false while Fulcrum waits by design for
	// bitcoind's initial sync (Settings.Plan).
	FulcrumMayStart bool     `json:"fulcrum_may_start"`
	Settings        Settings `json:"settings"`
	// ConfigWarnings are what the user should know about the override
	// files: options the program does not know or reads otherwise than
	// meant, lines left out.
	ConfigWarnings []string `json:"config_warnings,omitempty"`
	Steps          []Step   `json:"steps"`
}

// Failed lists the steps that failed.
func (r *Report) Failed() []Step {
	var out []Step
	for _, s := range r.Steps {
		if s.Error != "" {
			out = append(out, s)
		}
	}
	return out
}

// ReadReport reads a report written by Run.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// WriteText prints the report for people: what the machine is, what was
// chosen and why, the memory arithmetic, and what each step did.
func (r *Report) WriteText(out io.Writer) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	s := r.Settings
	verdict := "all steps succeeded"
	if n := len(r.Failed()); n > 0 {
		verdict = fmt.Sprintf("%d of %d steps FAILED", n, len(r.Steps))
	}
	fmt.Fprintf(w, "nodebake first boot, %s: %s\n\n", r.Time.Local().Format("2006-01-02 15:04:05 MST"), verdict)
	slow := ""
	if s.Slow {
		slow = ", slow-device mode"
	}
	fmt.Fprintf(w, "Machine:\t%s RAM (%d MiB), %d CPUs: tier %s%s\n", bytesize.Format(int64(s.Hardware.MemTotal)), s.Budget.RAM, s.Hardware.CPUs, s.Tier, slow)
	fmt.Fprintf(w, "Fulcrum:\t%d.x (%s)\n", s.FulcrumVersion, r.FulcrumSource)
	if r.BitcoindSynced {
		fmt.Fprintf(w, "bitcoind:\tsynced: dbcache %d MiB\n", s.Bitcoind.DBCacheSynced)
	} else {
		fmt.Fprintf(w, "bitcoind:\tinitial sync: dbcache %d MiB (%d MiB once %s exists)\n", s.Bitcoind.DBCacheIBD, s.Bitcoind.DBCacheSynced, SyncedMarker)
	}
	fmt.Fprintf(w, "Plan:\t%s\n", s.Plan.Why)
	if s.Plan.FulcrumWaits && !r.FulcrumMayStart {
		fmt.Fprintf(w, "\tFulcrum is stopped until nodebake-sync-watch sees bitcoind synced (%s is missing)\n", FulcrumMayStart)
	}
	for _, warn := range s.Warnings {
		fmt.Fprintf(w, "WARNING:\t%s\n", warn)
	}
	for _, warn := range r.ConfigWarnings {
		fmt.Fprintf(w, "WARNING:\t%s\n", warn)
	}

	fmt.Fprintf(w, "\nSettings\n")
	for _, re := range s.Reasons {
		fmt.Fprintf(w, "  %s\t%s\t%s\n", re.Setting, re.Value, re.Why)
	}

	b := s.Budget
	fmt.Fprintf(w, "\nMemory (MiB of %d)\treserve\tbitcoind\tFulcrum\tpeak\n", b.RAM)
	for _, p := range b.Phases {
		fulcrum := strconv.Itoa(p.Fulcrum)
		if p.Fulcrum == 0 {
			fulcrum = "waits"
		}
		fmt.Fprintf(w, "  %s\t%d\t%d\t%s\t%d\n", p.Name, b.OSReserve, p.Bitcoind, fulcrum, p.Peak)
	}
	fmt.Fprintf(w, "  (bitcoind: base %d + dbcache + maxmempool; Fulcrum: base %d + db_mem + utxo_cache while 1.x indexes)\n", bitcoindBase, fulcrumBase)

	fmt.Fprintf(w, "\nSteps\n")
	for _, st := range r.Steps {
		fmt.Fprintf(w, "  %s\t%s\n", st.Name, summary(st))
		for _, it := range st.Items {
			if it.Status == Unchanged {
				continue
			}
			line := fmt.Sprintf("%s %s", it.Status, it.What)
			if it.Detail != "" {
				line += ": " + it.Detail
			}
			fmt.Fprintf(w, "  \t  %s\n", line)
		}
		if st.Error != "" {
			fmt.Fprintf(w, "  \t  FAILED: %s\n", st.Error)
		}
	}
	return w.Flush()
}

// summary counts a step's items by status: "2 created, 5 unchanged".
func summary(st Step) string {
	order := []Status{Created, Changed, Unchanged, Skipped, Failed}
	n := map[Status]int{}
	for _, it := range st.Items {
		n[it.Status]++
	}
	var parts []string
	for _, s := range order {
		if n[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[s], s))
		}
	}
	if st.Error != "" {
		parts = append(parts, "FAILED")
	}
	if len(parts) == 0 {
		return "nothing to do"
	}
	return strings.Join(parts, ", ")
}
