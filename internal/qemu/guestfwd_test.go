package qemu

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestGuestForwardArgs(t *testing.T) {
	o := Options{Image: "x", GuestForwards: []GuestForward{{"10.0.2.100", 80, 8080}, {"10.0.2.101", 5000, 5001}}}
	a := args(o, paths{relay: "/usr/bin/socat"}, false)
	want := "user,id=net0,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:/usr/bin/socat -lf /dev/null STDIO TCP:127.0.0.1:8080," +
		"guestfwd=tcp:10.0.2.101:5000-cmd:/usr/bin/socat -lf /dev/null STDIO TCP:127.0.0.1:5001"
	if !containsSeq(a, []string{"-netdev", want}) {
		t.Errorf("command line lacks -netdev %q:\n%s", want, strings.Join(a, " "))
	}
}

func TestGuestForwardRejected(t *testing.T) {
	for name, g := range map[string][]GuestForward{
		"outside the user network": {{"192.168.1.10", 80, 8080}},
		"not an address":           {{"registry.local", 80, 8080}},
		"the host's address":       {{"10.0.2.2", 80, 8080}},
		"the guest's address":      {{"10.0.2.15", 80, 8080}},
		"port zero":                {{"10.0.2.100", 0, 8080}},
		"host port too large":      {{"10.0.2.100", 80, 70000}},
		"twice":                    {{"10.0.2.100", 80, 8080}, {"10.0.2.100", 80, 8081}},
	} {
		if _, err := withDefaults(Options{Image: "x", GuestForwards: g}); err == nil {
			t.Errorf("%s: accepted %+v", name, g)
		}
	}
	if _, err := withDefaults(Options{Image: "x", GuestForwards: []GuestForward{{"10.0.2.100", 80, 8080}}}); err != nil {
		t.Error(err)
	}
}

// The relay command QEMU starts for a guest connection, run the way
// libslirp runs it (standard input and output both one end of a socket
// pair), carries an HTTP exchange to a server on 127.0.0.1.
func TestGuestForwardRelay(t *testing.T) {
	socat, err := exec.LookPath(relay)
	if err != nil {
		t.Fatalf("%v: install socat", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from the host, %s", r.URL.Path)
	}))
	defer srv.Close()
	var port int
	fmt.Sscanf(srv.URL[strings.LastIndexByte(srv.URL, ':')+1:], "%d", &port)

	a := args(Options{Image: "x", GuestForwards: []GuestForward{{"10.0.2.100", 80, port}}}, paths{relay: socat}, false)
	var netdev string
	for i := range a {
		if a[i] == "-netdev" {
			netdev = a[i+1]
		}
	}
	_, cmdline, ok := strings.Cut(netdev, "-cmd:")
	if !ok {
		t.Fatalf("no relay command in %q", netdev)
	}
	argv := strings.Fields(cmdline)

	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	guest := os.NewFile(uintptr(fds[0]), "guest")
	qemuSide := os.NewFile(uintptr(fds[1]), "relay")
	defer guest.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout = qemuSide, qemuSide
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	qemuSide.Close()
	defer cmd.Wait()

	conn, err := net.FileConn(guest)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /v2/ HTTP/1.1\r\nHost: 10.0.2.100\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := make([]byte, 100)
	n, _ := resp.Body.Read(body)
	if resp.StatusCode != 200 || string(body[:n]) != "hello from the host, /v2/" {
		t.Errorf("through the relay: %s %q", resp.Status, body[:n])
	}
}

func TestGuestForwardNeedsSocat(t *testing.T) {
	q, err := exec.LookPath(qemuBinary)
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(q, filepath.Join(bin, qemuBinary)); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	_, err = Start(t.Context(), Options{Image: emptyImage(t), GuestForwards: []GuestForward{{"10.0.2.100", 80, 8080}}})
	if err == nil || !strings.Contains(err.Error(), "apt-get install socat") {
		t.Errorf("without socat: want a hint to install socat, got %v", err)
	}
}
