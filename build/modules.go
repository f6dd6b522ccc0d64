package build

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/nodebake/nodebake/internal/initramfs"
	"github.com/nodebake/nodebake/internal/kmodules"
	"github.com/nodebake/nodebake/internal/tree"
	"github.com/nodebake/nodebake/spec"
)

// trimModules keeps the kernel modules of the spec's profile and extras,
// and always those /init loads (the root's module tree serves udev after
// switch_root, and an update's initramfs is built from it).
func trimModules(t *tree.Tree, s *spec.Spec, kver, cacheDir string, log io.Writer) error {
	mods := s.Kernel.Modules
	profile, ok := kmodules.Profiles[mods.Profile]
	if !ok {
		return fmt.Errorf("%s: kernel.modules.profile: %q is not a profile", s.File, mods.Profile)
	}
	if profile == nil {
		fmt.Fprintf(log, "  all modules and firmware kept\n")
		return nil
	}
	keep := append(append([]string{}, profile...), initramfs.Modules...)
	depmod := kmodules.CachedDepmod(filepath.Join(cacheDir, "depmod"), kmodules.HostDepmod)
	st, err := kmodules.Trim(t, kver, keep, mods.Extra, depmod)
	var unknown *kmodules.UnknownError
	if errors.As(err, &unknown) {
		return s.Problem(fmt.Sprintf("kernel.modules.extra[%d]", unknown.Index), unknown.Msg)
	}
	if err != nil {
		return fmt.Errorf("%s: kernel.modules: %w", s.File, err)
	}
	fmt.Fprintf(log, "  %d modules kept (%.1f MB), %d removed; %d firmware files kept (%.1f MB), %d removed\n",
		st.Modules, float64(st.ModuleBytes)/1e6, st.ModulesRemoved, st.Firmware, float64(st.FirmwareBytes)/1e6, st.FirmwareRemoved)
	return nil
}

func extraNote(extra []string) string {
	if len(extra) == 0 {
		return ""
	}
	return " + " + strings.Join(extra, ", ")
}
