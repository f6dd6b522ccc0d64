package firstboot

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DetectHardware reads the RAM from root's /proc/meminfo and the CPUs from
// /sys/devices/system/cpu/online.
func DetectHardware(root string) (Hardware, error) {
	mem, err := memTotal(filepath.Join(root, "proc/meminfo"))
	if err != nil {
		return Hardware{}, err
	}
	cpus, err := onlineCPUs(filepath.Join(root, "sys/devices/system/cpu/online"))
	if err != nil {
		return Hardware{}, err
	}
	return Hardware{MemTotal: mem, CPUs: cpus}, nil
}

func memTotal(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			break
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("%s: no \"MemTotal: <n> kB\" line", path)
}

// onlineCPUs counts the CPUs in a kernel CPU list such as "0-3,6".
func onlineCPUs(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err1 := strconv.Atoi(lo)
		z, err2 := a, error(nil)
		if isRange {
			z, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || z < a {
			return 0, fmt.Errorf("%s: cannot read CPU list %q", path, strings.TrimSpace(string(b)))
		}
		n += z - a + 1
	}
	return n, nil
}

// FulcrumVersionFile is where the image build records the Fulcrum version
// it baked in.
const FulcrumVersionFile = "/usr/share/nodebake/fulcrum-version"

// defaultFulcrum is assumed when the image does not say: the version the
// guide installs today.
const defaultFulcrum FulcrumVersion = 2

// imageFulcrumVersion reads FulcrumVersionFile under root and says where
// the version came from. A missing or unreadable file means the default.
func imageFulcrumVersion(root string) (FulcrumVersion, string) {
	b, err := os.ReadFile(filepath.Join(root, FulcrumVersionFile))
	if errors.Is(err, fs.ErrNotExist) {
		return defaultFulcrum, fmt.Sprintf("%s is missing: assuming %d.x", FulcrumVersionFile, defaultFulcrum)
	}
	if err != nil {
		return defaultFulcrum, fmt.Sprintf("%v: assuming %d.x", err, defaultFulcrum)
	}
	v, err := ParseFulcrumVersion(string(b))
	if err != nil {
		return defaultFulcrum, fmt.Sprintf("%s: %v: assuming %d.x", FulcrumVersionFile, err, defaultFulcrum)
	}
	return v, fmt.Sprintf("%s: %s", FulcrumVersionFile, strings.TrimSpace(string(b)))
}
