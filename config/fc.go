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
//	    - kind: …          # the HBA driver
//	      port-wwn: 21:00:…  # optional where the adapter derives its own
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
}

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
		// No adapter kind ships yet: the in-process loopback adapter is
		// for tests only and the software FCoE adapter is still to come,
		// so an adapter listed here is refused rather than left idle.
		// A new kind adds its case here and its builder in the daemon.
		switch a.Kind {
		default:
			return c, fmt.Errorf("config: fc.adapters[%d]: unknown adapter kind %q (none is built in yet)", i, a.Kind)
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
