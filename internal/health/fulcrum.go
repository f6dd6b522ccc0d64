package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/nodebake/nodebake/internal/electrum"
)

// electrumProtocol is the version offered in the handshake: the oldest one
// Fulcrum still speaks (1.11 and 2.x alike), so any Fulcrum accepts it.
const electrumProtocol = "1.4"

func checkFulcrum(ctx context.Context, c Config) Status {
	server, protocol, eerr := handshake(ctx, c.Electrum)
	if eerr == nil {
		return Status{OK: true, Synced: true, Detail: fmt.Sprintf("%s (protocol %s), serving Electrum", server, protocol)}
	}
	electrumWhy := eerr.Error() // the electrum package names the address itself
	if r := netReason(eerr); r != "" {
		electrumWhy = "electrum " + c.Electrum + ": " + r
	}
	detail, serr := stats(ctx, c.FulcrumStats)
	if serr != nil {
		return Status{Err: fmt.Errorf("fulcrum: %s; stats %s: %v", electrumWhy, c.FulcrumStats, serr)}
	}
	return Status{OK: true, Detail: detail + "; " + electrumWhy}
}

func handshake(ctx context.Context, addr string) (server, protocol string, err error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cl, err := electrum.Dial(ctx, addr, nil)
	if err != nil {
		return "", "", err
	}
	defer cl.Close()
	return cl.ServerVersion(ctx, "nodebake-health", electrumProtocol)
}

// fulcrumStats is the part of Fulcrum's /stats answer read here (see
// Controller::stats in Fulcrum's source): "Header count" is Fulcrum's own
// indexed tip + 1; StateMachine exists while it processes blocks, and its
// Height is bitcoind's block count it is catching up to.
type fulcrumStats struct {
	Controller *struct {
		HeaderCount  *int64        `json:"Header count"`
		StateMachine *stateMachine `json:"StateMachine"`
	} `json:"Controller"`
	// Set instead of everything else when Fulcrum's controller was too busy
	// to answer in time (Fulcrum 1.9 and later; older ones send [null]).
	Error string `json:"error"`
}

// stats reads the stats endpoint, which Fulcrum serves from startup on, and
// describes the indexing progress.
func stats(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", errors.New(httpReason(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", fmt.Errorf("reading the answer: %s", httpReason(err))
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, excerpt(raw))
	}
	if bytes.Equal(bytes.TrimSpace(raw), []byte("[null]")) {
		return "indexing (too busy to report progress)", nil
	}
	var s fulcrumStats
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("not Fulcrum's stats (no JSON object): %s", excerpt(raw))
	}
	switch {
	case s.Controller != nil && s.Controller.HeaderCount != nil:
		return progress(*s.Controller.HeaderCount-1, s.Controller.StateMachine), nil
	case s.Error != "":
		return "indexing (too busy to report progress: " + s.Error + ")", nil
	}
	return "", fmt.Errorf("not Fulcrum's stats (no Controller \"Header count\"): %s", excerpt(raw))
}

type stateMachine struct {
	State  string `json:"State"` // e.g. "DownloadingBlocks", "RetryInIBD"
	Height *int64 `json:"Height"`
}

func progress(tip int64, sm *stateMachine) string {
	if tip < 0 {
		return "indexing: no blocks yet"
	}
	d := fmt.Sprintf("indexing: height %d", tip)
	if sm != nil && sm.Height != nil {
		d += fmt.Sprintf(" of %d", *sm.Height)
	}
	if sm != nil && sm.State != "" {
		d += " (" + sm.State + ")"
	}
	return d
}
