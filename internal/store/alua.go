package store

// ALUAGroup is the stored asymmetric access state of a target port group
// (portal group tag). Only groups set to something other than
// active/optimized, the default, are stored.
type ALUAGroup struct {
	Tag   uint16 `json:"tag"`
	State string `json:"state"` // api.ALUA* name, e.g. "standby"
}
