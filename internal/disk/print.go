package disk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/nodebake/nodebake/contract"
	"github.com/nodebake/nodebake/internal/bytesize"
)

// typeNames names the partition types nodebake uses; others print as GUIDs.
var typeNames = map[gpt.Type]string{
	gpt.EFISystemPartition: "EFI System",
	gpt.LinuxRootX86_64:    "Linux root (x86-64)",
	gpt.LinuxFilesystem:    "Linux filesystem",
}

// Print renders the image as readable tables, for `nodebake inspect`.
func (info *Info) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	mbr := "protective"
	if !info.ProtectiveMBR {
		mbr = "missing (Linux ignores the GPT)"
	}
	fmt.Fprintf(tw, "size\t%s\n", bytesize.Format(info.Size))
	fmt.Fprintf(tw, "disk GUID\t%s\n", info.DiskGUID)
	fmt.Fprintf(tw, "MBR\t%s\n\n", mbr)

	fmt.Fprintln(tw, "#\tNAME\tTYPE\tSTART\tSIZE\tPARTUUID\tCONTENT")
	for _, p := range info.Partitions {
		typ, ok := typeNames[p.Type]
		if !ok {
			typ = strings.ToLower(string(p.Type))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Number, p.Name, typ, bytesize.Format(p.Start), bytesize.Format(p.Size), p.UUID, p.Content)
	}

	if esp := info.ESP; esp != nil {
		fmt.Fprintf(tw, "\nESP files (volume label %q)\n", esp.Label)
		for _, f := range esp.Files {
			fmt.Fprintf(tw, "  %s\t%s\n", f.Path, bytesize.Format(f.Size))
		}
		if esp.LoaderConf != nil {
			fmt.Fprintln(tw, "\n/loader/loader.conf")
			keys := make([]string, 0, len(esp.LoaderConf))
			for k := range esp.LoaderConf {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				fmt.Fprintf(tw, "  %s\t%s\n", k, esp.LoaderConf[k])
			}
		}
		for _, e := range esp.Entries {
			fmt.Fprintf(tw, "\n/loader/entries/%s\n", e.File)
			fields := [][2]string{{"title", e.Title}, {"version", e.Version}, {"linux", e.Linux}}
			for _, i := range e.Initrd {
				fields = append(fields, [2]string{"initrd", i})
			}
			fields = append(fields, [2]string{"options", e.Options})
			for _, f := range fields {
				if f[1] != "" {
					fmt.Fprintf(tw, "  %s\t%s\n", f[0], f[1])
				}
			}
		}
	}

	for _, p := range info.Partitions {
		if p.Content != "squashfs" {
			continue
		}
		fmt.Fprintf(tw, "\n%s %s\n", p.Name, contract.ManifestPath)
		printManifest(tw, p.Manifest)
	}
	return tw.Flush()
}

// printManifest shows the manifest's top-level fields; nested lists (such
// as the package list) print as their length, to keep the overview short.
func printManifest(w io.Writer, m []byte) {
	if m == nil {
		fmt.Fprintln(w, "  (none)")
		return
	}
	d := json.NewDecoder(bytes.NewReader(m))
	d.UseNumber()
	var fields map[string]any
	if err := d.Decode(&fields); err != nil {
		fmt.Fprintf(w, "  (%d bytes, not a JSON object: %v)\n", len(m), err)
		return
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch v := fields[k].(type) {
		case []any:
			fmt.Fprintf(w, "  %s\t[%d items]\n", k, len(v))
		case map[string]any:
			fmt.Fprintf(w, "  %s\t{%d fields}\n", k, len(v))
		default:
			fmt.Fprintf(w, "  %s\t%v\n", k, v)
		}
	}
}
