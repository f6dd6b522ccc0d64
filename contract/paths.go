package contract

// Where a nodebake device keeps what the builder and the agent share.
// The builder writes the /usr files into the read-only root; the agent
// (nodectl) reads them, and owns the /data ones.
const (
	// ManifestPath is the image's record of what it is made of (Manifest).
	ManifestPath = "/usr/share/nodebake/manifest.json"
	// UpdateKeyPath holds the public key update bundles must be signed
	// with. An image without it accepts no bundle.
	UpdateKeyPath = "/usr/share/nodebake/update.pub"
	// UpdateSourcePath holds the text form of the image's update source,
	// if it names one.
	UpdateSourcePath = "/usr/share/nodebake/update-source"
	// FailedVersionsPath lists, one per line, the versions that failed to
	// boot on this device. It is on /data, so it outlives updates.
	FailedVersionsPath = "/data/.nodebake/failed-versions"
	// ESPMount is where the device mounts its ESP (efi.automount), as
	// systemd-bless-boot expects.
	ESPMount = "/efi"
)
