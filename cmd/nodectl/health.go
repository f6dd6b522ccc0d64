package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/nodebake/nodebake/internal/health"
)

func healthCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nodectl health", flag.ContinueOnError)
	wait := fs.Duration("wait", 0, "keep checking until both are up or this much time has passed (e.g. 5m)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := health.Default()
	var r health.Report
	if *wait > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), *wait)
		defer cancel()
		var err error
		if r, err = health.Wait(ctx, c, 5*time.Second); err != nil {
			fmt.Fprintln(stdout, r)
			return err
		}
	} else {
		r = health.Check(context.Background(), c)
	}
	fmt.Fprintln(stdout, r)
	if !r.OK() {
		return errors.New("the node is not healthy (see above)")
	}
	return nil
}
