// Package guest logs into a booted test VM over SSH so that tests can run
// commands on it and check its login policy.
//
// Host keys are not checked: every device makes its own on first boot, so a
// test cannot know them in advance, and the connection only ever goes to a
// VM on this machine through a port forwarded from 127.0.0.1.
package guest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// ErrRefused marks errors where the SSH server turned down authentication,
// as opposed to being unreachable.
var ErrRefused = errors.New("authentication refused")

const (
	// retryInterval is the pause between connection attempts while the
	// guest boots.
	retryInterval = 500 * time.Millisecond
	// attemptTimeout caps one connection attempt, including the SSH
	// handshake, which under software emulation can take seconds. It only
	// matters when the guest accepts the connection and then stalls.
	attemptTimeout = time.Minute
)

// Client is an SSH connection to a guest.
type Client struct {
	ssh  *ssh.Client
	addr string
}

// Dial logs into addr as user with the key signer, retrying until it
// succeeds or ctx is done: sshd starts late in a boot, and until then QEMU's
// port forward accepts connections and drops them. A refused key ends the
// retries at once with an error wrapping ErrRefused.
func Dial(ctx context.Context, addr, user string, signer ssh.Signer) (*Client, error) {
	config := &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
	}
	attempts := 0
	for {
		attempts++
		c, err := dial(ctx, addr, config)
		if err == nil {
			return &Client{ssh: c, addr: addr}, nil
		}
		if errors.Is(err, ErrRefused) {
			return nil, fmt.Errorf("ssh %s@%s: %w", user, addr, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("ssh %s@%s: no login after %d attempts: %w (last: %v)", user, addr, attempts, ctx.Err(), err)
		case <-time.After(retryInterval):
		}
	}
}

// dial makes one connection attempt.
func dial(ctx context.Context, addr string, config *ssh.ClientConfig) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The handshake has no context of its own: closing the connection is
	// what ends it early.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, config)
	if !stop() {
		if err == nil {
			c.Close()
		}
		return nil, ctx.Err()
	}
	if err != nil {
		conn.Close()
		// x/crypto/ssh has no error type for this; its message has been
		// the same for a decade and its own tests match it.
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("%w: %v", ErrRefused, err)
		}
		return nil, err
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// Run runs cmd through the guest's login shell and returns its standard
// output. If cmd fails, the error carries its exit status and standard error
// (and wraps *ssh.ExitError); the output so far is still returned.
func (c *Client) Run(cmd string) (string, error) {
	session, err := c.ssh.NewSession()
	if err != nil {
		return "", fmt.Errorf("ssh %s: open session for %q: %w", c.addr, cmd, err)
	}
	defer session.Close()
	var stdout, stderr bytes.Buffer
	session.Stdout = &stdout
	session.Stderr = &stderr
	if err := session.Run(cmd); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return stdout.String(), fmt.Errorf("guest: %q: %w; stderr: %s", cmd, err, msg)
		}
		return stdout.String(), fmt.Errorf("guest: %q: %w (no stderr)", cmd, err)
	}
	return stdout.String(), nil
}

// Close ends the connection.
func (c *Client) Close() error { return c.ssh.Close() }

// TryPassword makes one attempt to log into addr as user with password,
// offering it both as "password" and as "keyboard-interactive" (how sshd
// asks when PAM checks passwords). It returns nil if the login succeeded, an
// error wrapping ErrRefused if the server turned it down, and any other error
// if the server could not be asked. A test that password login is disabled
// asserts errors.Is(err, ErrRefused).
func TryPassword(ctx context.Context, addr, user, password string) error {
	answer := func(name, instruction string, questions []string, echos []bool) ([]string, error) {
		answers := make([]string, len(questions))
		for i := range answers {
			answers[i] = password
		}
		return answers, nil
	}
	config := &ssh.ClientConfig{
		User: user,
		Auth: []ssh.AuthMethod{
			ssh.Password(password),
			ssh.KeyboardInteractive(answer),
		},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
	}
	c, err := dial(ctx, addr, config)
	if err != nil {
		return fmt.Errorf("ssh %s@%s with a password: %w", user, addr, err)
	}
	return c.Close()
}

// NewKey makes a throwaway ed25519 key pair for a test: signer logs in with
// Dial, authorizedKey is the matching authorized_keys line (no newline).
func NewKey() (signer ssh.Signer, authorizedKey string, err error) {
	_, private, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("generate ed25519 key: %w", err)
	}
	signer, err = ssh.NewSignerFromKey(private)
	if err != nil {
		return nil, "", fmt.Errorf("ed25519 signer: %w", err)
	}
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(signer.PublicKey())), "\n")
	return signer, line + " nodebake-test", nil
}
