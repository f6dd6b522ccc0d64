package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

// moduleList names the modules to load, one per line. It must equal
// "/" + initramfs.ModuleList (a test checks); importing that package here
// would link the archive writer into /init.
const moduleList = "/etc/nodebake-init/modules"

// loadModules loads the listed modules and their dependencies. A module that
// fails to load is reported and skipped: the hardware it drives may be absent,
// and if the root disk needed it, the wait for the root partition will fail
// with the full picture.
func loadModules(list string) error {
	b, err := os.ReadFile(list)
	if err != nil {
		return fmt.Errorf("modules: %w (the initramfs is incomplete)", err)
	}
	names := strings.Fields(string(b))
	release := kernelRelease()
	if _, err := os.Stat("/lib/modules/" + release); err != nil {
		return fmt.Errorf("modules: this initramfs holds modules for kernel %s but kernel %s is running: the boot entry pairs the wrong files", moduleKernels(), release)
	}
	prober, err := kmodule.NewProber(kmodule.ProbeOpts{KVer: release})
	if err != nil {
		return fmt.Errorf("modules: %w", err)
	}
	// Loading is mostly the kernel checking signatures and relocating code,
	// so all modules load at once (under QEMU with 2 vCPUs: 0.9-1.2 s instead
	// of 1.6-1.9 s one after another); the prober loads a shared dependency
	// once, before the modules that need it.
	start := time.Now()
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() { errs[i] = prober.Probe(n, "") })
	}
	wg.Wait()
	loaded := 0
	for i, err := range errs {
		if err != nil {
			say("modules: %s: %v", names[i], err)
			continue
		}
		loaded++
	}
	say("modules: loaded %d of %d in %s", loaded, len(names), time.Since(start).Round(time.Millisecond))
	return nil
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "(unknown)"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// moduleKernels lists the kernel versions the initramfs has modules for.
func moduleKernels() string {
	entries, err := os.ReadDir("/lib/modules")
	if err != nil {
		return "(none)"
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return strings.Join(names, ", ")
}

// loadedModules lists the modules in /proc/modules.
func loadedModules() string {
	b, err := os.ReadFile("/proc/modules")
	if err != nil {
		return err.Error()
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if name, _, ok := strings.Cut(line, " "); ok {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "(none)"
	}
	slices.Sort(names)
	return strings.Join(names, " ")
}
