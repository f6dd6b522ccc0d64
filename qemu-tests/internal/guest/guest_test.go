package guest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// server is a real SSH server on loopback that runs exec requests with
// /bin/sh, standing in for the guest's sshd.
type server struct {
	config *ssh.ServerConfig
}

// newServer configures a server that accepts the public key authorizedKey
// and, if password is not empty, that password.
func newServer(t *testing.T, authorizedKey, password string) *server {
	t.Helper()
	_, hostKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	allowed, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorizedKey))
	if err != nil {
		t.Fatalf("authorized key %q: %v", authorizedKey, err)
	}
	config := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), allowed.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("key not authorized")
		},
	}
	if password != "" {
		config.PasswordCallback = func(_ ssh.ConnMetadata, p []byte) (*ssh.Permissions, error) {
			if string(p) == password {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		}
	}
	config.AddHostKey(hostSigner)
	return &server{config: config}
}

// listen starts serving on addr ("127.0.0.1:0" for any port).
func (s *server) listen(t *testing.T, addr string) string {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s.serveOn(l)
	return l.Addr().String()
}

func (s *server) serveOn(l net.Listener) {
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(conn)
		}
	}()
}

func (s *server) serve(conn net.Conn) {
	_, chans, reqs, err := ssh.NewServerConn(conn, s.config)
	if err != nil {
		conn.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, requests, err := nc.Accept()
		if err != nil {
			continue
		}
		go execSession(ch, requests)
	}
}

// execSession serves one session: its exec request runs in /bin/sh, and the
// exit status goes back as sshd sends it.
func execSession(ch ssh.Channel, requests <-chan *ssh.Request) {
	defer ch.Close()
	for req := range requests {
		if req.Type != "exec" {
			req.Reply(false, nil)
			continue
		}
		var payload struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
			req.Reply(false, nil)
			return
		}
		req.Reply(true, nil)
		cmd := exec.Command("/bin/sh", "-c", payload.Command)
		cmd.Stdout = ch
		cmd.Stderr = ch.Stderr()
		status := uint32(0)
		if err := cmd.Run(); err != nil {
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				return
			}
			status = uint32(exit.ExitCode())
		}
		ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
		return
	}
}

// TestDialWaitsForSSHD: until sshd is up the port is closed, then (as with
// QEMU's forward) it accepts and drops connections; Dial keeps trying and
// logs in once the server answers.
func TestDialWaitsForSSHD(t *testing.T) {
	signer, authorized, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, authorized, "")

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // closed port first

	dropped := make(chan struct{})
	serving := make(chan net.Listener, 1)
	go func() {
		defer close(serving)
		time.Sleep(time.Second)
		dropper, err := net.Listen("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		conn, err := dropper.Accept()
		if err == nil {
			conn.Close()
		}
		dropper.Close()
		close(dropped)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		srv.serveOn(l)
		serving <- l
	}()
	defer func() {
		if l, ok := <-serving; ok {
			l.Close()
		}
	}()

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr, "admin", signer)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-dropped:
	default:
		t.Fatal("Dial logged in before the server was up")
	}
	out, err := c.Run("echo hello from $(id -u)")
	if err != nil || !strings.HasPrefix(out, "hello from ") {
		t.Fatalf("Run after retrying: %q, %v", out, err)
	}
}

func TestRun(t *testing.T) {
	signer, authorized, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	addr := newServer(t, authorized, "").listen(t, "127.0.0.1:0")
	c, err := Dial(t.Context(), addr, "admin", signer)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	out, err := c.Run("printf 'a\\nb\\n'; echo noise >&2")
	if err != nil || out != "a\nb\n" {
		t.Errorf("Run: stdout %q, err %v; want only stdout and no error", out, err)
	}

	out, err = c.Run("echo partial; echo 'no such unit' >&2; exit 3")
	if err == nil {
		t.Fatal("Run of a failing command returned no error")
	}
	var exit *ssh.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != 3 {
		t.Errorf("error should wrap *ssh.ExitError with status 3: %v", err)
	}
	if !strings.Contains(err.Error(), "no such unit") || !strings.Contains(err.Error(), "exit 3") {
		t.Errorf("error lacks stderr or the command: %v", err)
	}
	if out != "partial\n" {
		t.Errorf("stdout of the failing command: %q", out)
	}
}

// TestKeyRefused: a wrong key fails at once instead of retrying until the
// deadline, and says the server refused it.
func TestKeyRefused(t *testing.T) {
	_, authorized, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	addr := newServer(t, authorized, "").listen(t, "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err = Dial(ctx, addr, "admin", other)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("Dial with an unauthorized key: want ErrRefused, got %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Dial retried a refused key until the deadline")
	}
}

func TestTryPassword(t *testing.T) {
	_, authorized, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	keysOnly := newServer(t, authorized, "").listen(t, "127.0.0.1:0")
	withPassword := newServer(t, authorized, "hunter2").listen(t, "127.0.0.1:0")

	if err := TryPassword(t.Context(), keysOnly, "admin", "hunter2"); !errors.Is(err, ErrRefused) {
		t.Errorf("server without password login: want ErrRefused, got %v", err)
	}
	if err := TryPassword(t.Context(), withPassword, "admin", "wrong"); !errors.Is(err, ErrRefused) {
		t.Errorf("wrong password: want ErrRefused, got %v", err)
	}
	if err := TryPassword(t.Context(), withPassword, "admin", "hunter2"); err != nil {
		t.Errorf("right password on a server that allows it: %v", err)
	}

	// Nobody listening is not a refusal: a test must not pass because the
	// guest was down.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	if err := TryPassword(t.Context(), closed, "admin", "hunter2"); err == nil || errors.Is(err, ErrRefused) {
		t.Errorf("closed port: want a connection error, got %v", err)
	}
}

func TestNewKey(t *testing.T) {
	signer, authorized, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, comment, _, rest, err := ssh.ParseAuthorizedKey([]byte(authorized))
	if err != nil || len(rest) != 0 || strings.Contains(authorized, "\n") {
		t.Fatalf("authorized_keys line %q: %v", authorized, err)
	}
	if pub.Type() != ssh.KeyAlgoED25519 || !bytes.Equal(pub.Marshal(), signer.PublicKey().Marshal()) || comment != "nodebake-test" {
		t.Errorf("line %q does not match the signer", authorized)
	}
	_, other, err := NewKey()
	if err != nil || other == authorized {
		t.Errorf("two keys are the same: %v", err)
	}
}
