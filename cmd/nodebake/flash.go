package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nodebake/nodebake/internal/flash"
	"github.com/nodebake/nodebake/internal/progress"
	"golang.org/x/sys/unix"
)

func cmdFlash(ctx context.Context, args []string) error {
	return runFlash(ctx, args, "/", os.Stdin, os.Stderr)
}

// runFlash is nodebake flash with the system root (for /proc and /sys),
// the answer's input and the messages' output as parameters, for tests.
func runFlash(ctx context.Context, args []string, root string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("flash", flag.ContinueOnError)
	fs.SetOutput(out)
	yes := fs.Bool("yes", false, "do not ask before overwriting DEVICE")
	fs.Usage = func() {
		fmt.Fprint(out, "Usage: nodebake flash [--yes] IMAGE DEVICE\n\n"+
			"Writes IMAGE (.img or .img.zst) onto DEVICE, a whole disk such as /dev/sdb\n"+
			"(lsblk lists them) or a regular file, then reads it back to check it.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return fmt.Errorf("flash: want IMAGE and DEVICE, e.g. nodebake flash out/minibolt-0.1.0.img.zst /dev/sdb")
	}
	imgPath, devPath := fs.Arg(0), fs.Arg(1)
	img, err := flash.OpenImage(imgPath)
	if err != nil {
		return fmt.Errorf("flash: %w", err)
	}
	defer img.Close()
	t, err := flash.OpenTarget(root, devPath)
	if err != nil {
		return fmt.Errorf("flash: %w", err)
	}
	if same(imgPath, devPath) {
		return fmt.Errorf("flash: %s is the image itself", devPath)
	}
	if err := t.Fits(img.Size); err != nil {
		return fmt.Errorf("flash: %w", err)
	}
	fmt.Fprintf(out, "nodebake flash: %s (%s) onto %s\n", imgPath, progress.MB(img.Size), t)
	if !*yes {
		fmt.Fprintf(out, "Everything on %s will be lost. Type yes to go on: ", devPath)
		line, _ := bufio.NewReader(in).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			return fmt.Errorf("flash: not confirmed; nothing was written (--yes skips the question)")
		}
	}

	var dev *os.File
	o := flash.Options{Progress: out}
	if t.Block {
		// O_EXCL on a block device fails while the kernel has it in use
		// (mounted, a RAID or LVM member): a last check after OpenTarget.
		if dev, err = os.OpenFile(devPath, os.O_RDWR|unix.O_EXCL, 0); err != nil {
			return fmt.Errorf("flash: %w", err)
		}
		o.DropCache = func() error { return flash.DropBlockCache(dev) }
	} else {
		if dev, err = os.OpenFile(devPath, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
			return fmt.Errorf("flash: %w", err)
		}
		if t.Size == 0 {
			// Truncating makes the regions flash skips zeros (holes).
			if err := dev.Truncate(img.Size); err != nil {
				dev.Close()
				return fmt.Errorf("flash: %w", err)
			}
		}
	}
	defer dev.Close()
	res, err := flash.Write(ctx, img, dev, o)
	if err != nil {
		return fmt.Errorf("flash: %s: %w", devPath, err)
	}
	if err := dev.Close(); err != nil {
		return fmt.Errorf("flash: %s: %w", devPath, err)
	}
	fmt.Fprintf(out, "nodebake flash: wrote %s of the %s image in %d runs and read them back: all match.\n",
		progress.MB(res.Written), progress.MB(img.Size), res.Extents)
	if t.Block {
		fmt.Fprintf(out, "Remove %s, put the disk in the node and boot it.\n", devPath)
	}
	return nil
}

func same(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}
