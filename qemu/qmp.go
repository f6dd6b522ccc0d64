package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// qmpConn is a connection to QEMU's machine protocol (QMP) socket: JSON
// commands in, one reply per command out, interleaved with events.
type qmpConn struct {
	conn    net.Conn
	replies chan qmpReply // closed when the connection ends

	mu     sync.Mutex // one command at a time
	lastID int
}

type qmpReply struct {
	ID     int             `json:"id"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
}

// connectQMP waits for QEMU to open its QMP socket, then negotiates the
// protocol. QEMU creates the socket early during startup, so this also
// waits out startup errors such as a host port that is already taken.
func (vm *VM) connectQMP(ctx context.Context, path string) error {
	for {
		conn, err := net.Dial("unix", path)
		if err == nil {
			q, err := newQMP(ctx, conn)
			if err != nil {
				return err
			}
			vm.qmp = q
			return nil
		}
		select {
		case <-vm.done:
			return errors.New("it exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func newQMP(ctx context.Context, conn net.Conn) (*qmpConn, error) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	dec := json.NewDecoder(conn)
	var greeting struct {
		QMP json.RawMessage `json:"QMP"`
	}
	if err := dec.Decode(&greeting); err != nil || greeting.QMP == nil {
		conn.Close()
		return nil, fmt.Errorf("QMP: no greeting from QEMU (%v)", err)
	}
	q := &qmpConn{conn: conn, replies: make(chan qmpReply, 1)}
	go q.read(dec)
	if _, err := q.execute(ctx, "qmp_capabilities"); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

// read passes replies to execute and drops events, until QEMU closes the
// connection by exiting.
func (q *qmpConn) read(dec *json.Decoder) {
	defer close(q.replies)
	defer q.conn.Close()
	for {
		var msg struct {
			qmpReply
			Event string `json:"event"`
		}
		if err := dec.Decode(&msg); err != nil {
			return
		}
		if msg.Event == "" {
			q.replies <- msg.qmpReply
		}
	}
}

// execute runs one QMP command and returns its "return" value. Each command
// carries an id so that the reply to a command whose caller gave up is not
// mistaken for the reply to the next one.
func (q *qmpConn) execute(ctx context.Context, command string) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.lastID++
	id := q.lastID
	req, err := json.Marshal(map[string]any{"execute": command, "id": id})
	if err != nil {
		return nil, err
	}
	if _, err := q.conn.Write(req); err != nil {
		return nil, fmt.Errorf("QMP %s: %w", command, err)
	}
	for {
		select {
		case r, ok := <-q.replies:
			if !ok {
				return nil, fmt.Errorf("QMP %s: QEMU closed the connection", command)
			}
			if r.ID != id {
				continue
			}
			if r.Error != nil {
				return nil, fmt.Errorf("QMP %s: %s: %s", command, r.Error.Class, r.Error.Desc)
			}
			return r.Return, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("QMP %s: %w", command, ctx.Err())
		}
	}
}
