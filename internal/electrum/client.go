// Package electrum is a small client for the Electrum protocol as Fulcrum
// speaks it: JSON-RPC 2.0 requests and responses, one JSON object per line,
// over plain TCP or TLS. Servers also push notifications (for example a new
// block after blockchain.headers.subscribe) on the same stream, so responses
// are matched to requests by id and pushes are kept aside.
//
// The client sends one request at a time and reads until its response
// arrives, which keeps it free of background goroutines; that is all a health
// check or a test needs.
package electrum

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nodebake/nodebake/internal/bytesize"
)

// maxLine bounds one message from the server. Fulcrum's own default limit
// for a client's buffer is about 1 MB; 16 MiB leaves room for large history
// replies without letting a broken peer exhaust memory.
const maxLine = 16 * bytesize.MiB

// Client is one connection to an Electrum server. Its methods may be called
// from several goroutines; requests are sent one after another.
type Client struct {
	addr string
	conn net.Conn

	mu     sync.Mutex
	lines  *bufio.Scanner
	lastID uint64
	broken error // set once the stream position is unknown; every later call fails with it
	pushed []Notification
}

// Notification is a message the server sent on its own, not as a response.
type Notification struct {
	Method string
	Params json.RawMessage
}

// Error is an error object the server returned instead of a result.
type Error struct {
	Addr    string // the server, as dialled
	Method  string
	Code    int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("electrum %s: %s: server error %d: %s", e.Addr, e.Method, e.Code, e.Message)
}

// Dial connects to addr ("host:port"). With a nil tlsConfig the connection
// is plain TCP; otherwise the TLS handshake is completed before Dial returns,
// so a certificate problem is reported here and not on the first call.
func Dial(ctx context.Context, addr string, tlsConfig *tls.Config) (*Client, error) {
	var (
		conn net.Conn
		err  error
	)
	if tlsConfig == nil {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
	} else {
		d := tls.Dialer{Config: tlsConfig}
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("electrum %s: %w", addr, err)
	}
	lines := bufio.NewScanner(conn)
	lines.Buffer(make([]byte, 0, 64*bytesize.KiB), maxLine)
	return &Client{addr: addr, conn: conn, lines: lines}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Notifications returns the pushes that arrived while the client waited for
// responses, oldest first, and forgets them.
func (c *Client) Notifications() []Notification {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.pushed
	c.pushed = nil
	return n
}

// message is any line the server sends: a response carries an id and a
// result or error, a notification carries a method and params but no id.
type message struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// Call sends method with params and decodes the result into result (a
// pointer, or nil to discard it). A JSON-RPC error from the server comes back
// as *Error. If ctx ends while waiting, the connection is left unusable,
// because the late response would otherwise be read as the next one.
func (c *Client) Call(ctx context.Context, method string, params []any, result any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return c.broken
	}
	if params == nil {
		params = []any{} // Electrum servers expect an array, never null
	}
	c.lastID++
	id := strconv.FormatUint(c.lastID, 10)
	req, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": c.lastID, "method": method, "params": params})
	if err != nil {
		return fmt.Errorf("electrum %s: %s: encoding params: %w", c.addr, method, err)
	}

	deadline, _ := ctx.Deadline() // zero: no deadline
	if err := c.conn.SetDeadline(deadline); err != nil {
		return c.fail(method, err)
	}
	// Cancelling ctx interrupts a blocked read by moving the deadline into
	// the past. Waiting for the callback to finish keeps it from touching the
	// deadline of a later call.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.conn.SetDeadline(time.Unix(1, 0))
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired
		}
	}()

	if _, err := c.conn.Write(append(req, '\n')); err != nil {
		return c.fail(method, ctxErr(ctx, err))
	}
	for {
		if !c.lines.Scan() {
			err := c.lines.Err()
			if err == nil {
				err = errors.New("connection closed by server")
			}
			return c.fail(method, ctxErr(ctx, err))
		}
		var m message
		if err := json.Unmarshal(c.lines.Bytes(), &m); err != nil {
			return c.fail(method, fmt.Errorf("malformed message %.200q: %w", c.lines.Text(), err))
		}
		switch {
		case m.Method != "" && isNull(m.ID):
			c.pushed = append(c.pushed, Notification{Method: m.Method, Params: m.Params})
		case string(m.ID) == id, isNull(m.ID) && !isNull(m.Error):
			// A null id with an error is the server rejecting a request it
			// could not parse; only this one is outstanding.
			return c.decode(method, m, result)
		default:
			// An id that answers no request of ours (a call that gives up
			// breaks the connection, so none of ours is pending): skip it.
		}
	}
}

// fail marks the connection unusable and returns the error that says why.
func (c *Client) fail(method string, err error) error {
	c.broken = fmt.Errorf("electrum %s: connection unusable after %s failed: %w", c.addr, method, err)
	return fmt.Errorf("electrum %s: %s: %w", c.addr, method, err)
}

// ctxErr reports a failure caused by ctx as ctx's error. The connection's
// deadline is ctx's deadline, and it may fire a moment before ctx itself
// says it is done.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ne net.Error
	if _, ok := ctx.Deadline(); ok && errors.As(err, &ne) && ne.Timeout() {
		return context.DeadlineExceeded
	}
	return err
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

func (c *Client) decode(method string, m message, result any) error {
	if !isNull(m.Error) {
		var e struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(m.Error, &e); err != nil {
			// Not the standard object; keep whatever the server said.
			return &Error{Addr: c.addr, Method: method, Message: string(m.Error)}
		}
		return &Error{Addr: c.addr, Method: method, Code: e.Code, Message: e.Message}
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(m.Result, result); err != nil {
		return fmt.Errorf("electrum %s: %s: unexpected result %.200s: %w", c.addr, method, m.Result, err)
	}
	return nil
}
