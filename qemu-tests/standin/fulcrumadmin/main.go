// Command FulcrumAdmin is a STAND-IN for the FulcrumAdmin script that
// ships with Fulcrum (a Python program there; a Go one here), built by
// nodebake's test suite (package standin) to talk to the stand-in Fulcrum;
// not for real use. It sends one command to Fulcrum's admin port as a
// newline-delimited JSON-RPC request and prints the result:
//
//	FulcrumAdmin -p PORT [-H HOST] [-j] stop|getinfo
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("FulcrumAdmin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("p", 0, "Fulcrum's admin port (required)")
	host := fs.String("H", "localhost", "Fulcrum's admin host")
	jsonOut := fs.Bool("j", false, "print the reply as JSON on one line")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: FulcrumAdmin -p port [-j] [-H host] {stop,getinfo}")
		fmt.Fprintln(stderr, "(stand-in for Fulcrum's FulcrumAdmin script; not for real use)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *port <= 0 || fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	cmd := fs.Arg(0)
	if cmd != "stop" && cmd != "getinfo" {
		fmt.Fprintf(stderr, "FulcrumAdmin: unknown command %q (the stand-in knows stop and getinfo)\n", cmd)
		return 2
	}
	addr := net.JoinHostPort(*host, strconv.Itoa(*port))
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "Error connecting to %s: %v\n", addr, err)
		return 1
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	req, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": cmd, "params": []any{}})
	if _, err := c.Write(append(req, '\n')); err != nil {
		fmt.Fprintf(stderr, "Error talking to %s: %v\n", addr, err)
		return 1
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		fmt.Fprintf(stderr, "Error reading the reply from %s: %v\n", addr, err)
		return 1
	}
	var reply struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(line, &reply); err != nil {
		fmt.Fprintf(stderr, "Bad reply from %s: %v\n", addr, err)
		return 1
	}
	if reply.Error != nil {
		fmt.Fprintf(stderr, "Error response from server: %s (code: %d)\n", reply.Error.Message, reply.Error.Code)
		return 1
	}
	if cmd == "stop" {
		return 0
	}
	var out bytes.Buffer
	if *jsonOut {
		json.Compact(&out, reply.Result)
	} else {
		json.Indent(&out, reply.Result, "", "    ")
	}
	fmt.Fprintln(stdout, out.String())
	return 0
}
