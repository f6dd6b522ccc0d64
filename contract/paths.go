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
	// UpdateInsecurePath exists when image.yaml's update.insecure is
	// true: the device then also reaches its source over plain HTTP
	// (for a lab network). Without it, only https:// and registries over
	// TLS are used.
	UpdateInsecurePath = "/usr/share/nodebake/update-insecure"
	// UpdateSchedulePath holds image.yaml's update.schedule (Schedule),
	// when it sets one: nodectl update auto reboots only inside it.
	UpdateSchedulePath = "/usr/share/nodebake/update-schedule"
	// UpdatePausePath exists while automatic updates are paused (nodectl
	// update pause); it holds the time they resume by themselves, or
	// nothing: until nodectl update resume.
	UpdatePausePath = "/data/.nodebake/update-paused"
	// AutoUpdatePath records what the last automatic update run did.
	AutoUpdatePath = "/data/.nodebake/auto-update.json"
	// KeyRotationsPath holds the key rotation statements the device has
	// accepted from its channels. Each is signed by the key it replaces,
	// so the file is checked again on every load: starting from the baked
	// key, it says which key the device trusts now, whichever slot runs.
	KeyRotationsPath = "/data/.nodebake/key-rotations.json"
	// ChannelStatePath records, per update source, the newest channel
	// statement the device has accepted (its counter, key and expiry), so
	// that an older one is refused.
	ChannelStatePath = "/data/.nodebake/channels.json"
	// UpdateLockPath is flock(2)ed by nodectl update for as long as it
	// reads or changes the slots and the update state, so that two runs
	// do not interleave.
	UpdateLockPath = "/run/nodebake/update.lock"
	// FailedVersionsPath lists, one per line, the versions that failed to
	// boot on this device. It is on /data, so it outlives updates.
	FailedVersionsPath = "/data/.nodebake/failed-versions"
	// DataFormatsPath records the format of the data on /data (see
	// Manifest.DataFormats), the formats each slot's image writes, and
	// the upgrades under way; package internal/dataformat owns it.
	DataFormatsPath = "/data/.nodebake/data-formats.json"
	// ESPMount is where the device mounts its ESP (efi.automount), as
	// systemd-bless-boot expects.
	ESPMount = "/efi"
)
