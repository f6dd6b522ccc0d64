package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rekby/gpt"
	"github.com/u-root/u-root/pkg/mount/block"

	"github.com/nodebake/nodebake/internal/bytesize"
)

// partitionWait is how long to wait for a partition: disks appear
// asynchronously, USB ones seconds after their driver loads.
const partitionWait = 30 * time.Second

// blockDevice is a disk or partition as /init sees it.
type blockDevice struct {
	name     string // "vda2"
	size     uint64 // bytes
	partUUID string // lower case; empty unless a partition on a GPT disk
	label    string // GPT partition name
}

// waitForPartition polls until exactly one partition has the given PARTUUID
// and returns its device path.
func waitForPartition(what, partUUID string) (string, error) {
	deadline := time.Now().Add(partitionWait)
	announced := false
	for {
		devs, err := scanBlockDevices()
		if err != nil {
			return "", err
		}
		dev, err := findPartition(devs, partUUID)
		if err == nil {
			say("%s: found /dev/%s (PARTUUID %s, %s)", what, dev.name, partUUID, bytesize.Format(int64(dev.size)))
			return "/dev/" + dev.name, nil
		}
		if err != errNoPartition {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s: no partition with PARTUUID %s appeared within %s", what, partUUID, partitionWait)
		}
		if !announced {
			say("%s: waiting up to %s for PARTUUID %s", what, partitionWait, partUUID)
			announced = true
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var errNoPartition = errors.New("no partition with this PARTUUID")

// findPartition picks the one device with partUUID. Two matches mean two
// disks carry the same image (say, an installer stick and the internal
// disk): guessing could pair a root with a foreign data partition.
func findPartition(devs []blockDevice, partUUID string) (blockDevice, error) {
	var found []blockDevice
	for _, d := range devs {
		if d.partUUID == strings.ToLower(partUUID) {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 0:
		return blockDevice{}, errNoPartition
	case 1:
		return found[0], nil
	}
	var names []string
	for _, d := range found {
		names = append(names, "/dev/"+d.name)
	}
	return blockDevice{}, fmt.Errorf("PARTUUID %s is on %s: several disks carry this image; detach all but the one to boot",
		partUUID, strings.Join(names, " and "))
}

// scanBlockDevices lists the block devices in /sys/class/block, with the
// PARTUUID and name of each partition read from its disk's GPT.
func scanBlockDevices() ([]blockDevice, error) {
	const sys = "/sys/class/block"
	entries, err := os.ReadDir(sys)
	if err != nil {
		return nil, err
	}
	tables := map[string]*gpt.Table{}
	var devs []blockDevice
	for _, e := range entries {
		d := blockDevice{name: e.Name()}
		if sectors, err := readSysUint(filepath.Join(sys, d.name, "size")); err == nil {
			d.size = sectors * 512 // sysfs counts 512-byte sectors whatever the device's block size
		}
		if num, err := readSysUint(filepath.Join(sys, d.name, "partition")); err == nil {
			// /sys/class/block/vda2 links to …/block/vda/vda2: the parent is the disk.
			real, err := filepath.EvalSymlinks(filepath.Join(sys, d.name))
			if err == nil {
				disk := filepath.Base(filepath.Dir(real))
				t, seen := tables[disk]
				if !seen {
					t, _ = (&block.BlockDev{Name: disk}).GPTTable()
					tables[disk] = t
				}
				if t != nil && num >= 1 && num <= uint64(len(t.Partitions)) {
					p := t.Partitions[num-1]
					d.partUUID = strings.ToLower(p.Id.String())
					d.label = p.Name()
				}
			}
		}
		devs = append(devs, d)
	}
	return devs, nil
}

func readSysUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}
