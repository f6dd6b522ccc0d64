// Package ota is the update bundle format and the device's side of updating
// over the air: it verifies signed bundles, downloads them from an OCI
// registry or any web server, and writes them into the inactive root slot
// so that systemd-boot's boot counting decides whether the new slot stays.
// Making and publishing bundles is the builder's side, in ota/bundler; the
// device agent (nodectl) imports only this package, so no image writer
// (FAT, squashfs, GPT image) is part of it.
//
// # Bundle
//
// A bundle is six files (five before format 3), in a directory or in one
// uncompressed tar file holding exactly these names in this order (small
// files first, so a reader of the stream meets the manifest before the
// bulk):
//
//	manifest.json  what the bundle is, signed byte for byte (see Manifest)
//	manifest.sig   "ed25519 <key id> <base64 signature>\n", detached
//	vmlinuz        the kernel
//	initrd.img     the initramfs
//	root.idx       root.img's chunk index (format 3; see Delta updates)
//	root.img       the root slot's content: squashfs, zero-padded to 4 KiB,
//	               then the dm-verity superblock and hash tree
//
// The manifest names the image (name, version, the compatibility id a
// device must run), the kernel arguments and PARTUUIDs the boot entry
// needs, the verity parameters, and the size and sha256 of each other file
// (of root.img also of its two parts: the filesystem and the verity data).
// File names are fixed, never read from the bundle, so a bundle cannot
// write outside its directory. A directory is what bundler.Create makes
// and what bundler.PublishDir and Source.Download produce; the tar
// (bundler.WriteTar) is for copying one file onto a device. Open reads
// either.
//
// Verify trusts nothing before the signature: it checks the signature with
// the device's key, then compatibility, that the PARTUUIDs are the running
// disk's, version and the list of versions that already failed here, then
// every file's size and sha256.
//
// # Delivery
//
// bundler.Publish pushes a bundle to an OCI registry as an artifact (OCI
// image manifest with artifactType ArtifactType, the empty config, one
// layer per file with its own media type); bundler.PublishDir writes the
// bundle directory for any static web server. Either way the publisher
// adds a channel statement (Channel: channel.json and channel.sig, signed
// with the update key), and rotations.json when the key was rotated.
//
// A device reaches either through a Source, over TLS unless the image is
// marked insecure. Source.Fetch gets the small files first: the channel
// statement, the rotations, the manifest and its signature. VerifyChannel
// follows the rotations that start from the trusted key, checks the
// statement's signature by the key they lead to, its expiry, that its
// counter is not below the one the device accepted from that source
// before (Device.AcceptChannel keeps it on /data, with the rotations), and
// that the manifest offered is the one it names. This is TUF's timestamp
// role for a channel of one bundle: a mirror cannot hold a device on an
// old release past the expiry, replay an older statement, or offer any
// bundle but the current one. VerifyManifest then checks the manifest, and
// only then does Download fetch the other files by the sizes and sha256
// that manifest signs — from a registry, as the blobs with those digests.
// Nothing the server says afterwards, and no second copy of the manifest,
// plays a part. Each file is written under a temporary name, checked, and
// renamed into place; the manifest comes last.
//
// # Delta updates
//
// A device that runs one release already holds most of the next: a
// config change or a package upgrade leaves nearly all of the squashfs's
// compressed blocks as they were (the build packs a sorted tar stream
// with clamped times and fixed compressor settings; squashfs's tests
// check it), only at other offsets. So root.img is cut into
// content-defined chunks (package chunkindex: restic's Rabin chunker with
// a fixed polynomial, 16–256 KiB, 64 KiB on average), which find the same
// cuts in shifted data, and bundler.Create writes their sizes and sha256
// to root.idx, whose size and sha256 the signed manifest records
// (RootIndex). The index is about 36 bytes per 64 KiB: 0.06% of the root.
//
// Source.Plan fetches root.idx by its signed record, then cuts the
// running slot's partition (up to RootSize of its verity parameters) the
// same way and looks each chunk of the index up by its sha256. Cutting the
// running root afresh, rather than keeping the index of the bundle last
// installed, works after flashing, a rollback or an update from a file,
// and trusts nothing on /data; it costs one read of the root. The kernel
// and initramfs are taken whole from the running slot's files on the ESP
// when their sha256 is the manifest's. Source.DownloadPlan then assembles
// root.img in the download folder: chunks the device holds are read from
// the running slot, the others are fetched with HTTP range requests, runs
// of adjacent missing chunks in one request of at most 8 MiB — from a web
// folder's root.img, or from a registry's root.img blob (a range GET on
// the blob URL of the distribution API, authenticated as a pull; the
// bundle stays one blob per file, so publishing and full downloads are
// unchanged and no registry holds thousands of tiny blobs). A range answer
// must be 206 with exactly the Content-Range asked for, and no more bytes
// than asked are read; every chunk is checked against the index before it
// is written, and the whole file against the manifest before it is renamed
// into place. A bad chunk ends the download with an error and an empty
// folder: nothing reaches Apply, so no slot is written. Verify and Apply
// then run as for any bundle: the slot is written, read back and checked.
//
// The full download remains: for a bundle without an index (format 1 or
// 2), an index cut with other parameters, a running root that cannot be
// read, more than 80% of root.img missing, or a server that answers range
// requests with the whole file (200).
//
// Format 3 added RootIndex. nodectl before it decodes manifests strictly
// and refuses a format 3 manifest ("unknown field root_index"): such a
// device must first be brought to an image whose nodectl reads format 3
// by a format 2 bundle (made by a nodebake from before format 3), or be
// flashed.
//
// A key rotation (RotateKey) is signed by the key it replaces. A device
// leaves each key at most once, so after it took A→B, a rotation A→X
// signed by a thief of A leads nowhere, and nothing signed by A is
// accepted any more; a new key also starts a new count.
//
// # Slots and boot entries
//
// The disk has two root slots, a and b. Each has one Boot Loader Spec entry
// in /loader/entries on the ESP (two names only while a change of its name
// is cut off, below), named for the slot and carrying systemd-boot's boot
// counter in its name:
//
//	nodebake-b+3.conf    new: three tries left               (Pending)
//	nodebake-b+2-1.conf  systemd-boot renamed it when booting (Pending)
//	nodebake-b.conf      systemd-bless-boot dropped the counter: good (Good)
//	nodebake-b+0-3.conf  tries used up without being blessed  (Bad)
//	nodebake-b+0.conf    a good slot set aside (Standby)
//
// systemd-boot (252, as shipped with Debian 12) boots the first entry of its
// sorted list, and sorts by, in order: entries with no tries left last;
// entries with a sort-key before those without; sort-key ascending; version
// descending; file name descending (both compared like CompareVersions).
// NextBoot reproduces that order. Every entry this package writes has
// "sort-key nodebake" and the image version, so among healthy entries the
// newest version boots.
//
// A loader.conf "default" pattern is not used: systemd-boot picks the first
// entry matching the pattern even when it has no tries left, which would
// defeat the automatic fallback. The LoaderEntryDefault EFI variable has the
// same flaw and needs efivarfs besides. Entry names are all it takes: an entry
// with "+0" sorts last, and with three tries it sorts above the running
// entry whenever its version is newer.
//
// When the order alone would not boot the new entry (a downgrade, or
// Rollback to an older slot), the running slot's entry is demoted to
// Standby ("+0"). Should the new slot then use up its tries, both entries
// have none left, and systemd-boot compares them exactly as it did before
// the demotion: the running slot's entry sorted first then, so it boots
// again. Standby differs from Bad only in having no "-N" part, which
// systemd-boot never writes; Rollback and Apply rely on that to tell a good
// slot set aside from a failed one.
//
// # Changing an entry's name
//
// A rename on Linux vfat is not atomic: it adds the new directory entry
// and deletes the old one, and these may be in different sectors that the
// kernel writes separately and a drive's cache may reorder, so a cut can
// leave both names or neither. nodectl therefore never renames an entry
// that exists: to give an entry a new counter (moveEntry) it writes the
// same content under the new name plus ".tmp" (systemd-boot reads only
// names ending in .conf), syncs the file and the directory, renames the
// temporary file to the new name (a cut leaves the new name whole, empty
// or missing, the old one untouched), syncs the renamed file (vfat writes
// the new directory entry's clusters and size only with the file's inode)
// and the directory, and only then
// removes the old name and syncs the directory. A removal that is cut off
// leaves the old name, or its 8.3 alias (NODEBA~1.CON), which systemd-boot
// ignores. Renames that stay are of files no entry names yet: a new slot's
// kernel, initramfs and entry from their ".tmp" names.
//
// While a slot has two names both describe it with the same content, so
// systemd-boot boots that slot whichever it picks. The name that stands
// for the slot (SlotEntry; the failed-version record and Apply's and
// Rollback's checks use it) is the most trusted: Good, Standby, Pending,
// Bad; among Pending names the one with fewer tries left. Apply and
// Rollback first remove the other names and leftover ".tmp" files
// (tidyEntries), so a later run finishes the interrupted change (a Good
// name given back to a Standby slot, systemd-bless-boot's blessing) or
// undoes it (a demotion, a rollback's fresh tries), which that run then
// makes again. The rule never removes the last name of a slot, never the
// good name of a good slot, and never makes a slot more trusted than one
// of its names said.
//
// systemd-boot's renames (a try counted, "+3" → "+2-1") and
// systemd-bless-boot's ("+2-1" → no counter) are systemd's, with the same
// flaw; systemd-bless-boot syncs the directory but not the file, so until
// the kernel writes the inode back the blessed name is empty on the disk
// and a cut then boots the other slot. They rename only the entry of the slot being tried, while the
// other slot's entry, untouched, is the fallback: a cut that leaves both
// names boots that slot either way; one that leaves neither boots the
// fallback; and since Apply refuses to write over the other slot until
// the running one is blessed (Good), that fallback is always complete.
//
// # Apply, step by step, and what a power cut leaves
//
// nodectl holds Lock for a whole apply or rollback, so two never overlap.
// Apply writes the slot the device is not running (T) and never opens the
// running slot's partition or the data partition. The running slot's entry
// must be Good or Standby: replacing the last known-good slot while the
// running one is still on trial could leave nothing that boots.
//
//  1. Tidy the entries (above): every removal leaves the name that stands
//     for its slot.
//  2. Remove T's entries, then T's kernel and initramfs, and the leftovers
//     of an interrupted run. From here on nothing points at T. Cut: the
//     running slot's entry is the only one and boots, whatever its
//     counter says.
//  3. If the running entry is Standby (a rollback or downgrade that was
//     never booted), give it its Good name again (moveEntry): it is the
//     fallback now. Cut: the running slot has one name or two and is the
//     only slot with an entry.
//  4. Stream root.img into T's partition while hashing it; sync, drop the
//     page cache and read it back; both hashes must match the signed
//     manifest. Cut: T holds garbage, but no entry names it.
//  5. Write kernel and initramfs to nodebake/T/ under ".tmp" names, read
//     them back and check their hashes, rename them into place. Cut: still
//     no entry for T; a cut rename leaves one name, both or none of a file
//     no entry names.
//  6. Write loader/entries/nodebake-T+3.conf.tmp, sync it, rename it. Cut
//     before the rename or in it with the new name lost: the old entry
//     set; after, or in it with both names: a complete entry whose files
//     were all verified.
//  7. If systemd-boot's order would still prefer the running entry, demote
//     it to Standby (moveEntry). Cut before its old name is removed: the
//     running slot boots (the update is simply not active yet, and
//     running Apply again undoes the half-made demotion and redoes the
//     update); after: T boots with three tries, and if it uses them up,
//     both entries have none left and the running slot sorts first as it
//     did before.
//
// Each file is synced before it is renamed and each directory after every
// change. This assumes, as systemd-boot's own counting does, that a single
// sector write is not torn.
//
// Rollback makes the other slot (O) the default the same way: it tidies,
// gives O's entry three fresh tries with moveEntry, then, unless O already
// sorts first, demotes the running entry with moveEntry. During the first
// move the running entry is untouched and O has one or two complete
// names; during the second O has its new name and the running slot one
// or two: either slot may boot first, both complete, and the running one
// keeps a name. A slot whose entry is Bad is refused: it never booted to
// completion.
package ota
