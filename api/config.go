package api

// Declarative configuration: stmfadm export prints a Config, stmfadm
// apply -f makes the running state match one. The document is YAML with
// kebab-case keys (the yaml tags); the API carries it as JSON. Secrets are
// never part of a Config: objects name them by key (the *-secret-ref
// fields) in a separate secrets file the client reads.
//
// New settings (QoS, ...) are added as new optional fields; a document
// without them leaves those settings alone.

// Methods of the declarative configuration.
const (
	MethodExportConfig = "ExportConfig"
	MethodApplyConfig  = "ApplyConfig"
)

// ConfigVersion is the version of the Config document export writes and
// apply accepts.
const ConfigVersion = 1

// CodeStateChanged: the running configuration changed after the plan was
// computed (its generation no longer matches); nothing was applied.
const CodeStateChanged Code = "STATE_CHANGED"

// Config is the whole configuration of one stmfd, in a stable order:
// everything is sorted by its name (LUs and views by GUID).
type Config struct {
	Version      int               `json:"version" yaml:"version"`
	Defaults     *ConfigDefaults   `json:"defaults,omitempty" yaml:"defaults,omitempty"`
	TPGs         []ConfigTPG       `json:"tpgs,omitempty" yaml:"tpgs,omitempty"`
	Targets      []ConfigTarget    `json:"targets,omitempty" yaml:"targets,omitempty"`
	Initiators   []ConfigInitiator `json:"initiators,omitempty" yaml:"initiators,omitempty"`
	HostGroups   []ConfigGroup     `json:"host_groups,omitempty" yaml:"host-groups,omitempty"`
	TargetGroups []ConfigGroup     `json:"target_groups,omitempty" yaml:"target-groups,omitempty"`
	LUs          []ConfigLU        `json:"lus,omitempty" yaml:"lus,omitempty"`
	Views        []ConfigView      `json:"views,omitempty" yaml:"views,omitempty"`
	ALUA         []ConfigALUA      `json:"alua,omitempty" yaml:"alua,omitempty"`
}

// ConfigDefaults are itadm's defaults. Absent from a file: left alone.
type ConfigDefaults struct {
	Auth            string   `json:"auth" yaml:"auth"` // none, chap, radius
	RadiusServer    string   `json:"radius_server,omitempty" yaml:"radius-server,omitempty"`
	RadiusSecretRef string   `json:"radius_secret_ref,omitempty" yaml:"radius-secret-ref,omitempty"`
	ISNS            bool     `json:"isns" yaml:"isns"`
	ISNSServers     []string `json:"isns_servers,omitempty" yaml:"isns-servers,omitempty"`
}

// ConfigTPG is an iSCSI target portal group.
type ConfigTPG struct {
	Name    string   `json:"name" yaml:"name"`
	Portals []string `json:"portals" yaml:"portals,flow"`
}

// ConfigTarget is a target. Protocol "" is iSCSI; targets of other
// protocols (FC ports) come from their hardware and cannot be created.
type ConfigTarget struct {
	Name          string   `json:"name" yaml:"name"`
	Protocol      string   `json:"protocol,omitempty" yaml:"protocol,omitempty"`
	Alias         string   `json:"alias,omitempty" yaml:"alias,omitempty"`
	Offline       bool     `json:"offline,omitempty" yaml:"offline,omitempty"`
	Auth          string   `json:"auth,omitempty" yaml:"auth,omitempty"` // "" = the defaults
	ChapUser      string   `json:"chap_user,omitempty" yaml:"chap-user,omitempty"`
	ChapSecretRef string   `json:"chap_secret_ref,omitempty" yaml:"chap-secret-ref,omitempty"`
	TPGs          []TPGTag `json:"tpgs,omitempty" yaml:"tpgs,omitempty"` // empty = default portal group
}

// ConfigInitiator is an initiator context (per-initiator CHAP).
type ConfigInitiator struct {
	Name          string `json:"name" yaml:"name"`
	ChapUser      string `json:"chap_user,omitempty" yaml:"chap-user,omitempty"`
	ChapSecretRef string `json:"chap_secret_ref,omitempty" yaml:"chap-secret-ref,omitempty"`
}

// ConfigGroup is a host or target group.
type ConfigGroup struct {
	Name    string   `json:"name" yaml:"name"`
	Members []string `json:"members" yaml:"members"`
}

// ConfigLU is a logical unit and its backing store. Apply imports the
// backing store of an LU it does not have; with Create it creates the
// backing store instead, but only when DataFile does not exist yet.
// Properties that only create-lu sets (block size, vid, pid, serial,
// thin) are checked, not changed, on an existing LU when given.
type ConfigLU struct {
	GUID          string `json:"guid" yaml:"guid"`
	DataFile      string `json:"data_file" yaml:"data-file"`
	MetaFile      string `json:"meta_file,omitempty" yaml:"meta-file,omitempty"`
	Create        bool   `json:"create,omitempty" yaml:"create,omitempty"`
	Size          uint64 `json:"size,omitempty" yaml:"size,omitempty"`
	BlockSize     uint32 `json:"block_size,omitempty" yaml:"block-size,omitempty"`
	Offline       bool   `json:"offline,omitempty" yaml:"offline,omitempty"`
	Alias         string `json:"alias,omitempty" yaml:"alias,omitempty"`
	MgmtURL       string `json:"mgmt_url,omitempty" yaml:"mgmt-url,omitempty"`
	VID           string `json:"vid,omitempty" yaml:"vid,omitempty"`
	PID           string `json:"pid,omitempty" yaml:"pid,omitempty"`
	Serial        string `json:"serial,omitempty" yaml:"serial,omitempty"`
	WCD           bool   `json:"wcd,omitempty" yaml:"wcd,omitempty"`
	WP            bool   `json:"wp,omitempty" yaml:"wp,omitempty"`
	Thin          bool   `json:"thin,omitempty" yaml:"thin,omitempty"`
	SoftThreshold uint8  `json:"soft_threshold,omitempty" yaml:"soft-threshold,omitempty"`
	// Per-LU QoS limits (costar extension; 0 = unlimited; qos-mbps in MiB/s).
	QoSIOPS uint64 `json:"qos_iops,omitempty" yaml:"qos-iops,omitempty"`
	QoSMBps uint64 `json:"qos_mbps,omitempty" yaml:"qos-mbps,omitempty"`
}

// ConfigView is a view entry: an LU is at LUN for the initiators of
// HostGroup through the targets of TargetGroup ("" = All). An LU has at
// most one view per host group and target group pair; entry numbers are
// the daemon's business and are not part of the document.
type ConfigView struct {
	GUID        string `json:"guid" yaml:"guid"`
	HostGroup   string `json:"host_group,omitempty" yaml:"host-group,omitempty"`
	TargetGroup string `json:"target_group,omitempty" yaml:"target-group,omitempty"`
	LUN         int    `json:"lun" yaml:"lun"`
}

// ConfigALUA is the access state of a target port group (portal group
// tag); groups not listed are active-optimized.
type ConfigALUA struct {
	Tag   uint16 `json:"tag" yaml:"tag"`
	State string `json:"state" yaml:"state"`
}

// ApplyRequest is stmfadm apply. Secrets holds the secrets the Config
// refers to, by key (read by the client from the secrets file). A
// non-empty Generation makes the daemon refuse (CodeStateChanged) when the
// running configuration is no longer the one that generation names.
type ApplyRequest struct {
	Config     Config            `json:"config"`
	Secrets    map[string]string `json:"secrets,omitempty"`
	DryRun     bool              `json:"dry_run,omitempty"`
	Prune      bool              `json:"prune,omitempty"`
	Generation string            `json:"generation,omitempty"`
}

// ApplyResult is the plan (and, unless a dry run, what was done).
// Generation names the running configuration the plan was computed from;
// after a change NewGeneration names the new one.
type ApplyResult struct {
	Generation    string   `json:"generation"`
	Steps         []string `json:"steps"` // COMSTAR command lines, in order
	Applied       bool     `json:"applied"`
	NewGeneration string   `json:"new_generation,omitempty"`
}

// ExportResult is stmfadm export: the configuration and its generation.
type ExportResult struct {
	Config     Config `json:"config"`
	Generation string `json:"generation"`
}
