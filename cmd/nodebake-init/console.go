package main

import (
	"fmt"
	"os"
)

// kmsg is /dev/kmsg once it could be opened.
var kmsg *os.File

// say prints one line through the kernel log once /dev is mounted, so it
// reaches every console the kernel writes to (the screen and the serial
// port), not only /dev/console; before that, to /init's stderr.
func say(format string, args ...any) {
	line := fmt.Sprintf("nodebake-init: "+format+"\n", args...)
	if kmsg == nil {
		kmsg, _ = os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	}
	// <5> is "notice": shown on the console unless the command line has "quiet".
	if kmsg == nil || writeKmsg(line) != nil {
		fmt.Fprint(os.Stderr, line)
	}
}

// writeKmsg writes one record; the kernel limits a record to ~1 KiB.
func writeKmsg(line string) error {
	if len(line) > 900 {
		line = line[:900] + "…\n"
	}
	_, err := kmsg.WriteString("<5>" + line)
	return err
}
