package config

import (
	"fmt"
	"strings"

	"github.com/spf13/viper"
)

// FCConfig is the Fibre Channel port provider's section (config file only):
//
//	fc:
//	  adapters:
//	    - kind: fcoe           # software FCoE, VN2VN mode (FC-BB-6)
//	      interface: eth1      # the Ethernet interface (MTU 2158+ for 2112-byte payloads)
//	      port-wwn: 10:00:…    # optional: derived from the interface MAC
//	      node-wwn: 20:00:…    # optional: derived from the interface MAC
//	      beacon-seconds: 8    # optional VN2VN beacon interval
//	      port-group: 2        # optional ALUA target port group (default 1)
//
// The provider is registered only when at least one adapter is listed.
type FCConfig struct {
	Adapters []FCAdapter
}

// FCAdapter is one HBA port in target mode.
type FCAdapter struct {
	Kind    string `mapstructure:"kind"`
	PortWWN string `mapstructure:"port-wwn"`
	NodeWWN string `mapstructure:"node-wwn"`
	// Interface is the Ethernet interface of an fcoe adapter.
	Interface string `mapstructure:"interface"`
	// BeaconSeconds is the VN2VN beacon interval of an fcoe adapter
	// (0: 8 s, FC-BB-6's default).
	BeaconSeconds int `mapstructure:"beacon-seconds"`
	// PortGroup is the ALUA target port group the FC target joins (0: the
	// default group 1), the number stmfadm set-alua-state -g takes.
	PortGroup int `mapstructure:"port-group"`
}

// FCAdapterFCoE is the software FCoE (VN2VN) adapter kind.
const FCAdapterFCoE = "fcoe"

// loadFC reads and checks the fc section.
func loadFC(v *viper.Viper) (FCConfig, error) {
	var c FCConfig
	if err := v.UnmarshalKey("fc", &c); err != nil {
		return c, fmt.Errorf("config: fc: %w", err)
	}
	for i, a := range c.Adapters {
		for _, w := range []string{a.PortWWN, a.NodeWWN} {
			if w != "" && !validWWN(w) {
				return c, fmt.Errorf("config: fc.adapters[%d]: %q is not a WWN (16 hex digits, colons allowed)", i, w)
			}
		}
		if a.PortGroup < 0 || a.PortGroup > 65535 {
			return c, fmt.Errorf("config: fc.adapters[%d]: port-group %d outside 1..65535", i, a.PortGroup)
		}
		// The in-process loopback adapter is for tests only, so it is
		// refused here like any kind stmfd cannot build. A new kind adds
		// its case here and its builder in the daemon.
		switch a.Kind {
		case FCAdapterFCoE:
			if a.Interface == "" {
				return c, fmt.Errorf("config: fc.adapters[%d]: kind fcoe needs an interface", i)
			}
			if a.BeaconSeconds < 0 || a.BeaconSeconds > 3600 {
				return c, fmt.Errorf("config: fc.adapters[%d]: beacon-seconds %d outside 0..3600", i, a.BeaconSeconds)
			}
			for j := range i {
				if c.Adapters[j].Kind == FCAdapterFCoE && c.Adapters[j].Interface == a.Interface {
					return c, fmt.Errorf("config: fc.adapters[%d]: interface %s is already fc.adapters[%d]", i, a.Interface, j)
				}
			}
		default:
			return c, fmt.Errorf("config: fc.adapters[%d]: unknown adapter kind %q (built in: fcoe)", i, a.Kind)
		}
	}
	return c, nil
}

func validWWN(s string) bool {
	h := strings.ReplaceAll(s, ":", "")
	if len(h) != 16 {
		return false
	}
	for _, c := range h {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}
