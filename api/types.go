package api

import "time"

// Method names: the path of a call is "/v1/" + method.
const (
	MethodGetState = "GetState"

	MethodListLUs   = "ListLUs"
	MethodCreateLU  = "CreateLU"
	MethodImportLU  = "ImportLU"
	MethodModifyLU  = "ModifyLU"
	MethodDeleteLU  = "DeleteLU"
	MethodOnlineLU  = "OnlineLU"
	MethodOfflineLU = "OfflineLU"

	MethodListViews  = "ListViews"
	MethodAddView    = "AddView"
	MethodRemoveView = "RemoveView"

	MethodListGroups        = "ListGroups"
	MethodCreateGroup       = "CreateGroup"
	MethodDeleteGroup       = "DeleteGroup"
	MethodAddGroupMember    = "AddGroupMember"
	MethodRemoveGroupMember = "RemoveGroupMember"

	MethodListTargets   = "ListTargets"
	MethodCreateTarget  = "CreateTarget"
	MethodModifyTarget  = "ModifyTarget"
	MethodDeleteTarget  = "DeleteTarget"
	MethodOnlineTarget  = "OnlineTarget"
	MethodOfflineTarget = "OfflineTarget"

	MethodListTPGs  = "ListTPGs"
	MethodCreateTPG = "CreateTPG"
	MethodDeleteTPG = "DeleteTPG"

	MethodListInitiators  = "ListInitiators"
	MethodCreateInitiator = "CreateInitiator"
	MethodModifyInitiator = "ModifyInitiator"
	MethodDeleteInitiator = "DeleteInitiator"

	MethodGetDefaults    = "GetDefaults"
	MethodModifyDefaults = "ModifyDefaults"
)

// Empty is the request or response of calls that carry nothing.
type Empty struct{}

// State is stmfadm list-state, plus where the portals listen.
type State struct {
	Operational string   `json:"operational"` // online
	Config      string   `json:"config"`      // initialized
	ALUA        string   `json:"alua"`        // enabled | disabled
	ALUANode    int      `json:"alua_node"`
	Portals     []string `json:"portals"` // actual listen addresses of the default portal group
	// TargetPortGroups are the ALUA target port groups (portal group
	// tags) with their access states, by tag (api/alua.go).
	TargetPortGroups []ALUAGroup `json:"target_port_groups"`
	// Goroutines is the daemon's goroutine count when asked (a leak check
	// for soak runs: it must return to its idle value once sessions end).
	Goroutines int `json:"goroutines,omitempty"`
	// HeapLiveBytes is the live heap as of the daemon's last garbage
	// collection (the soak's leak check; RSS also holds freed memory the
	// Go runtime has not given back).
	HeapLiveBytes uint64 `json:"heap_live_bytes,omitempty"`
}

// LU describes a logical unit (stmfadm list-lu -v, sbdadm list-lu).
type LU struct {
	GUID           string `json:"guid"`                    // 32 upper-case hex digits
	Status         string `json:"status"`                  // Online | Offline
	StatusDetail   string `json:"status_detail,omitempty"` // why the LU is not open (e.g. waiting for its zvol); "" when it is
	Provider       string `json:"provider"`
	Alias          string `json:"alias"`
	ViewEntryCount int    `json:"view_entry_count"`
	DataFile       string `json:"data_file"`
	MetaFile       string `json:"meta_file,omitempty"`
	// Available is false when the backing store could not be opened; the
	// properties below are then unknown (zero).
	Available          bool   `json:"available"`
	Size               uint64 `json:"size"`
	BlockSize          uint32 `json:"block_size"`
	MgmtURL            string `json:"mgmt_url,omitempty"`
	VID                string `json:"vid"`
	PID                string `json:"pid"`
	Serial             string `json:"serial,omitempty"`
	WriteProtect       bool   `json:"write_protect"`
	WriteCacheDisabled bool   `json:"write_cache_disabled"`
	AccessState        string `json:"access_state"` // Active | Standby | ...
	Thin               bool   `json:"thin"`
	SoftThreshold      uint8  `json:"soft_threshold,omitempty"`
	QoSIOPS            uint64 `json:"qos_iops,omitempty"` // 0 = unlimited
	QoSMBps            uint64 `json:"qos_mbps,omitempty"` // MiB/s, 0 = unlimited
	// ErrorState is a remembered write-back failure (costar extension):
	// "sync failed at <time>: <error>"; online-lu after offline-lu clears it.
	ErrorState string `json:"error_state,omitempty"`
	// Cluster is the LU's owner and each node's ALUA state (cluster mode
	// only; api/cluster.go).
	Cluster *LUCluster `json:"cluster,omitempty"`
}

// LUProps are the -p properties of create-lu and modify-lu. Nil/empty
// fields are not set. modify-lu accepts only Alias, MgmtURL, WCD and WP.
type LUProps struct {
	Alias     *string `json:"alias,omitempty"`
	BlockSize *uint32 `json:"blk,omitempty"`
	GUID      string  `json:"guid,omitempty"`    // 32 hex digits, used verbatim
	HostID    string  `json:"host_id,omitempty"` // 8 hex digits
	MetaFile  string  `json:"meta,omitempty"`
	MgmtURL   *string `json:"mgmt_url,omitempty"`
	OUI       string  `json:"oui,omitempty"` // 6 hex digits
	PID       *string `json:"pid,omitempty"`
	Serial    *string `json:"serial,omitempty"`
	VID       *string `json:"vid,omitempty"`
	WCD       *bool   `json:"wcd,omitempty"`
	WP        *bool   `json:"wp,omitempty"`
	// costar extensions: thin provisioning (create-lu only) and its soft
	// threshold in percent of the backing file system (0 = off).
	Thin          *bool  `json:"thin,omitempty"`
	SoftThreshold *uint8 `json:"soft_threshold,omitempty"`
	// costar extensions: per-LU QoS limits, kept in the daemon's state
	// (0 = unlimited). MBps is MiB/s, as SPDK's rw_mbytes_per_sec.
	QoSIOPS *uint64 `json:"qos_iops,omitempty"`
	QoSMBps *uint64 `json:"qos_mbps,omitempty"`
	// Preallocation (create-lu on a file only, costar): "falloc" reserves
	// the space of the part of the data file create-lu makes (a new file,
	// or what an existing one grows by), "full" also writes it with
	// zeroes; "off" or "" leaves it sparse.
	Preallocation string `json:"preallocation,omitempty"`
}

// CreateLURequest is stmfadm/sbdadm create-lu. DataFile must be absolute.
type CreateLURequest struct {
	DataFile string  `json:"data_file"`
	Size     uint64  `json:"size,omitempty"` // 0: the backing store's current size
	Props    LUProps `json:"props"`
}

// ImportLURequest is import-lu: File is the data file, or the meta file of
// an LU with separate metadata.
type ImportLURequest struct {
	File string `json:"file"`
}

// ModifyLURequest is modify-lu: the LU is named by GUID, or by File (its
// data or meta file) when GUID is empty.
type ModifyLURequest struct {
	GUID  string  `json:"guid,omitempty"`
	File  string  `json:"file,omitempty"`
	Size  uint64  `json:"size,omitempty"` // 0: unchanged
	Props LUProps `json:"props"`
}

// DeleteLURequest is delete-lu; KeepViews is -k.
type DeleteLURequest struct {
	GUID      string `json:"guid"`
	KeepViews bool   `json:"keep_views,omitempty"`
}

// GUIDRequest names one LU (online-lu, offline-lu, list-view).
type GUIDRequest struct {
	GUID string `json:"guid"`
}

// View is a view entry. Empty group names mean "All".
type View struct {
	GUID        string `json:"guid"`
	Entry       int    `json:"entry"`
	HostGroup   string `json:"host_group,omitempty"`
	TargetGroup string `json:"target_group,omitempty"`
	LUN         int    `json:"lun"`
}

// AddViewRequest is add-view. LUN nil: the lowest LUN free in every map
// the view overlaps.
type AddViewRequest struct {
	GUID        string `json:"guid"`
	HostGroup   string `json:"host_group,omitempty"`
	TargetGroup string `json:"target_group,omitempty"`
	LUN         *int   `json:"lun,omitempty"`
}

// RemoveViewRequest removes one view entry of an LU.
type RemoveViewRequest struct {
	GUID  string `json:"guid"`
	Entry int    `json:"entry"`
}

// GroupKind selects host groups or target groups.
type GroupKind string

// Group kinds.
const (
	HostGroup   GroupKind = "host"
	TargetGroup GroupKind = "target"
)

// Group is a host group (initiator names) or target group (target names).
type Group struct {
	Name    string   `json:"name"`
	Members []string `json:"members"`
}

// GroupRequest names a group (create, delete) or a kind (list).
type GroupRequest struct {
	Kind GroupKind `json:"kind"`
	Name string    `json:"name,omitempty"`
}

// MemberRequest adds or removes one member of a group.
type MemberRequest struct {
	Kind   GroupKind `json:"kind"`
	Group  string    `json:"group"`
	Member string    `json:"member"`
}

// Session is a logged-in I_T nexus.
type Session struct {
	Initiator     string    `json:"initiator"`
	Alias         string    `json:"alias,omitempty"`
	LoggedInSince time.Time `json:"logged_in_since"`
}

// TPGTag binds a target to a target portal group with a portal group tag.
type TPGTag struct {
	TPG string `json:"tpg"`
	Tag uint16 `json:"tag"`
}

// Target is a target of any protocol as stmfadm sees it, and an iSCSI
// target node as itadm sees it: Auth, ChapUser, ChapSecretSet and TPGs are
// the iSCSI target's (empty for other protocols).
type Target struct {
	Name          string    `json:"name"`
	Alias         string    `json:"alias,omitempty"`
	Online        bool      `json:"online"`
	Provider      string    `json:"provider"`       // iscsit; an FC HBA driver (qlt)
	Protocol      string    `json:"protocol"`       // ProtocolISCSI; Fibre Channel
	Auth          string    `json:"auth,omitempty"` // "" = use the defaults
	ChapUser      string    `json:"chap_user,omitempty"`
	ChapSecretSet bool      `json:"chap_secret_set"`
	TPGs          []TPGTag  `json:"tpgs"` // empty = default portal group
	Sessions      []Session `json:"sessions"`
}

// NameRequest names one object (a target, portal group or initiator).
type NameRequest struct {
	Name  string `json:"name"`
	Force bool   `json:"force,omitempty"`
}

// TargetRequest is itadm create-target / modify-target. For create, nil
// fields are unset and an empty Name generates an IQN. For modify, nil
// fields stay as they are. The special values of itadm apply: Alias and
// ChapUser "none" unset, Auth "default" follows the defaults, TPGs
// ["default"] is the default portal group.
type TargetRequest struct {
	Name       string    `json:"name,omitempty"`
	NewName    string    `json:"new_name,omitempty"`
	Alias      *string   `json:"alias,omitempty"`
	Auth       *string   `json:"auth,omitempty"`
	ChapUser   *string   `json:"chap_user,omitempty"`
	ChapSecret *string   `json:"chap_secret,omitempty"`
	TPGs       *[]string `json:"tpgs,omitempty"`
}

// TPG is a target portal group.
type TPG struct {
	Name    string   `json:"name"`
	Portals []string `json:"portals"`
}

// Initiator is an initiator context (per-initiator CHAP); the secret is
// never returned.
type Initiator struct {
	Name          string `json:"name"`
	ChapUser      string `json:"chap_user,omitempty"`
	ChapSecretSet bool   `json:"chap_secret_set"`
}

// InitiatorRequest is create-initiator / modify-initiator. ChapUser "none"
// unsets the user name.
type InitiatorRequest struct {
	Name       string  `json:"name"`
	ChapUser   *string `json:"chap_user,omitempty"`
	ChapSecret *string `json:"chap_secret,omitempty"`
}

// Defaults are itadm's global properties.
type Defaults struct {
	Alias           string   `json:"alias,omitempty"`
	Auth            string   `json:"auth,omitempty"` // "" = none
	RadiusServer    string   `json:"radius_server,omitempty"`
	RadiusSecretSet bool     `json:"radius_secret_set"`
	ISNS            bool     `json:"isns"`
	ISNSServers     []string `json:"isns_servers,omitempty"`
}

// DefaultsRequest is itadm modify-defaults; nil fields stay. RadiusServer
// "none" and ISNSServers ["none"] remove the setting.
type DefaultsRequest struct {
	Auth         *string   `json:"auth,omitempty"`
	RadiusServer *string   `json:"radius_server,omitempty"`
	RadiusSecret *string   `json:"radius_secret,omitempty"`
	ISNS         *bool     `json:"isns,omitempty"`
	ISNSServers  *[]string `json:"isns_servers,omitempty"`
}

// ProtocolISCSI is Target.Protocol of an iSCSI target ("Protocol" in
// stmfadm list-target -v); itadm lists only these.
const ProtocolISCSI = "iSCSI"

// ProtocolFC is Target.Protocol of a Fibre Channel target.
const ProtocolFC = "Fibre Channel"
