package ota

// Where a nodebake device keeps what updating needs. The image builder
// writes the first two into the read-only root; nodectl reads them all.
const (
	// KeyPath holds the public key bundles must be signed with, in the
	// form SavePublicKey writes. An image without it accepts no bundle.
	KeyPath = "/usr/share/nodebake/update.pub"
	// SourcePath holds the text form of the image's Source, if it has one.
	SourcePath = "/usr/share/nodebake/update-source"
	// FailedPath lists, one per line, the versions that failed to boot on
	// this device (Policy.Failed). It is on /data, so it outlives updates.
	FailedPath = "/data/.nodebake/failed-versions"
	// ESPMount is where the device mounts its ESP (efi.automount), as
	// systemd-bless-boot expects.
	ESPMount = "/efi"
)
