// Package testvm drives test VMs through their serial console: it records
// what a qemu.VM prints and waits for patterns in it, the way expect(1)
// does. Only tests watch the console; `nodebake qemu` hands it to the user.
package testvm

import (
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nodebake/nodebake/internal/qemu"
)

// VM is a qemu.VM whose serial console is recorded.
type VM struct {
	*qemu.VM
	console *console
}

// Start starts a VM like qemu.Start and records its console; o.Console, if
// set, still gets a copy.
func Start(ctx context.Context, o qemu.Options) (*VM, error) {
	c := &console{copy: o.Console, changed: make(chan struct{})}
	o.Console = c
	vm, err := qemu.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	// qemu.VM.Wait returns once QEMU has exited for good and its console
	// has been read to the end: nothing more will be written.
	go func() { c.end(vm.Wait()) }()
	return &VM{VM: vm, console: c}, nil
}

// console is the record of a VM's serial console.
type console struct {
	mu      sync.Mutex
	copy    io.Writer // the caller's Options.Console; dropped if it fails
	buf     []byte
	cursor  int           // WaitConsole has consumed buf[:cursor]
	changed chan struct{} // closed and replaced whenever buf grows or ends
	ended   bool          // QEMU has exited for good
	exitErr error         // its exit result, valid once ended
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.copy != nil {
		if _, err := c.copy.Write(p); err != nil {
			// A broken copy must not stall the VM or the tests.
			c.copy = nil
		}
	}
	c.buf = append(c.buf, p...)
	close(c.changed)
	c.changed = make(chan struct{})
	return len(p), nil
}

func (c *console) end(exitErr error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended, c.exitErr = true, exitErr
	close(c.changed)
	c.changed = make(chan struct{})
}

// consoleRescan limits how often WaitConsole rescans the console: the serial
// port delivers output a few bytes at a time, and rescanning everything
// since the last match on every byte would be quadratic.
const consoleRescan = 50 * time.Millisecond

// WaitConsole waits until the serial console shows a match for re and
// returns the match. Like expect(1) it consumes output: the search starts
// after the end of the previous match, so waiting twice for the same pattern
// waits for its second occurrence (e.g. across a reboot). It fails as soon as
// QEMU exits or ctx is done, with the end of the console in the error.
func (vm *VM) WaitConsole(ctx context.Context, re *regexp.Regexp) (string, error) {
	return vm.console.wait(ctx, re)
}

func (c *console) wait(ctx context.Context, re *regexp.Regexp) (string, error) {
	for {
		c.mu.Lock()
		if loc := re.FindIndex(c.buf[c.cursor:]); loc != nil {
			match := string(c.buf[c.cursor+loc[0] : c.cursor+loc[1]])
			c.cursor += loc[1]
			c.mu.Unlock()
			return match, nil
		}
		changed, ended, exitErr := c.changed, c.ended, c.exitErr
		c.mu.Unlock()

		if ended {
			status := "without error"
			if exitErr != nil {
				status = exitErr.Error()
			}
			return "", fmt.Errorf("QEMU exited (%s) before the console showed /%s/; console ends with:%s",
				status, re, indent(c.tail()))
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return "", fmt.Errorf("console never showed /%s/: %w; console ends with:%s",
				re, ctx.Err(), indent(c.tail()))
		}
		select {
		case <-time.After(consoleRescan):
		case <-ctx.Done():
		}
	}
}

// Console returns everything the serial console has shown so far.
func (vm *VM) Console() string { return vm.console.String() }

func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}

// ansiEscape matches the terminal control sequences firmware and boot
// loaders use to draw menus; they make error messages unreadable.
var ansiEscape = regexp.MustCompile(`\x1b(\[[0-9;?=]*[A-Za-z]|[()][0-9A-Za-z])`)

// tail is the last part of the console as readable text, for errors.
func (c *console) tail() string {
	text := ansiEscape.ReplaceAllString(c.String(), "")
	text = strings.ToValidUTF8(strings.ReplaceAll(text, "\r", ""), "")
	const max = 3000
	if len(text) > max {
		text = "…" + text[len(text)-max:]
	}
	if strings.TrimSpace(text) == "" {
		return "(nothing)"
	}
	return text
}

// indent formats multi-line text to follow a colon in an error message.
func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "\n    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// forwarding into a test VM.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
