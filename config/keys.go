package config

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// envName is the environment variable of a setting: STMFD_STATE_DIR.
func envName(key string) string {
	return "STMFD_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

// fileOnlyKeys are the settings only a config file can hold (sections
// with lists of structures, such as fc.go's adapters), as viper names them.
func fileOnlyKeys() []string { return []string{"fc", "fc.adapters"} }

// checkKeys refuses a config file key that is not a setting: a typo
// ("portals:") would otherwise be ignored without a word.
func checkKeys(fs *pflag.FlagSet, v *viper.Viper) error {
	var unknown []string
	for _, k := range v.AllKeys() {
		if !v.InConfig(k) || slices.Contains(fileOnlyKeys(), k) {
			continue
		}
		if f := fs.Lookup(k); f == nil || k == "config" {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("unknown setting %s (see stmfd --help)", strings.Join(unknown, ", "))
	}
	return nil
}

// shadowed lists the config file's keys that a flag or an environment
// variable overrides.
func shadowed(fs *pflag.FlagSet, v *viper.Viper) []string {
	var out []string
	fs.VisitAll(func(f *pflag.Flag) {
		if !v.InConfig(f.Name) {
			return
		}
		if _, env := os.LookupEnv(envName(f.Name)); env || f.Changed {
			out = append(out, f.Name)
		}
	})
	return out
}
