// Package contract is what the image builder and the device agree on, and
// the only place it is defined: the image manifest and where it lies, the
// device paths of the update key, update source, failed versions and ESP
// mount, the ESP's layout and boot entries, the kernel command line of a
// slot, the partitions and their GUIDs, and the kinds of release artifact.
//
// Both sides import it; it imports only the standard library and a UUID
// package, so the initramfs /init stays small.
package contract
