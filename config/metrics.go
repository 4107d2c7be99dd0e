package config

import (
	"fmt"
	"net"
	"strconv"

	"github.com/spf13/viper"
)

// loadMetricsListen reads and checks metrics-listen: empty (off) or
// host:port with a numeric port (0: any free port).
func loadMetricsListen(v *viper.Viper) (string, error) {
	addr := v.GetString("metrics-listen")
	if addr == "" {
		return "", nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return "", fmt.Errorf("config: --metrics-listen %q: want HOST:PORT (e.g. 127.0.0.1:9563): %w", addr, err)
	}
	return addr, nil
}
