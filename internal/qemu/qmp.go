package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
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

	closed   chan struct{} // closed when the connection has ended
	shutdown string        // the reason of QEMU's SHUTDOWN event; read after closed
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
func connectQMP(ctx context.Context, path string, exited <-chan struct{}) (*qmpConn, error) {
	for {
		conn, err := net.Dial("unix", path)
		if err == nil {
			return newQMP(ctx, conn)
		}
		select {
		case <-exited:
			return nil, errors.New("it exited")
		case <-ctx.Done():
			return nil, ctx.Err()
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
	q := &qmpConn{conn: conn, replies: make(chan qmpReply, 1), closed: make(chan struct{})}
	go q.read(dec)
	if _, err := q.execute(ctx, "qmp_capabilities"); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

// read passes replies to execute and keeps the reason of the SHUTDOWN
// event, until QEMU closes the connection by exiting.
func (q *qmpConn) read(dec *json.Decoder) {
	defer close(q.closed)
	defer close(q.replies)
	defer q.conn.Close()
	for {
		var msg struct {
			qmpReply
			Event string `json:"event"`
			Data  struct {
				Reason string `json:"reason"`
			} `json:"data"`
		}
		if err := dec.Decode(&msg); err != nil {
			return
		}
		switch msg.Event {
		case "":
			q.replies <- msg.qmpReply
		case "SHUTDOWN":
			q.shutdown = msg.Data.Reason
		}
	}
}

// reset waits for the connection to end (QEMU has exited) and reports
// whether QEMU stopped because the machine was reset ("guest-reset" when
// the guest reboots, "host-qmp-system-reset" for QMP's system_reset) under
// -no-reboot, rather than powered off or killed.
func (q *qmpConn) reset() bool {
	<-q.closed
	return strings.HasSuffix(q.shutdown, "-reset")
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
