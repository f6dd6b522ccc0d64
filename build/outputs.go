package build

import (
	"fmt"
	"os"
	"path/filepath"
)

// outputs collects files written under temporary names beside their final
// paths; commit renames them all (the image last, so a present image always
// has its checksum beside it), abort removes whatever is left.
type outputs struct {
	image string
	tmp   map[string]string // final → temporary
	order []string
}

func newOutputs(image string) *outputs { return &outputs{image: image, tmp: map[string]string{}} }

// temp returns the temporary name for final.
func (o *outputs) temp(final string) string {
	if t, ok := o.tmp[final]; ok {
		return t
	}
	t := filepath.Join(filepath.Dir(final), "."+filepath.Base(final)+".partial")
	o.tmp[final] = t
	if final != o.image {
		o.order = append(o.order, final)
	}
	return t
}

func (o *outputs) commit() error {
	for _, final := range append(o.order, o.image) {
		if err := os.Rename(o.tmp[final], final); err != nil {
			return fmt.Errorf("output: %w", err)
		}
		delete(o.tmp, final)
	}
	return nil
}

func (o *outputs) abort() {
	for _, t := range o.tmp {
		os.Remove(t)
	}
}
