package config

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// DefaultMemoryLimit is stmfd's default Go soft memory limit: with it the
// garbage collector works harder as the daemon's memory nears the limit
// instead of letting the heap grow to twice what is live (GOGC=100), which
// keeps RSS at 64 iSCSI sessions x QD32 under 64 MiB (BENCHMARKS.md).
const DefaultMemoryLimit = "48M"

func addMemoryFlags(fs *pflag.FlagSet) {
	fs.String("memory-limit", DefaultMemoryLimit, "Go soft memory limit of the daemon (K/M/G suffixes; off: none); "+
		"the GOMEMLIMIT environment variable, when set, wins")
}

// loadMemoryLimit reads --memory-limit: bytes, or -1 for no limit.
func loadMemoryLimit(v *viper.Viper) (int64, error) {
	s := strings.TrimSpace(v.GetString("memory-limit"))
	if strings.EqualFold(s, "off") {
		return -1, nil
	}
	n, err := ParseSize(s)
	if err != nil || n < 16<<20 || n > 1<<50 {
		return 0, fmt.Errorf("config: --memory-limit %q: want off or a size of at least 16M, such as 48M", s)
	}
	return int64(n), nil
}
