package config

import (
	"fmt"
	"net"
	"strconv"

	"github.com/spf13/viper"
)

// loadPprofListen reads and checks pprof-listen: empty (off) or a
// loopback host:port. Profiles show internals (and cost CPU while taken),
// so they are never offered beyond the machine.
func loadPprofListen(v *viper.Viper) (string, error) {
	addr := v.GetString("pprof-listen")
	if addr == "" {
		return "", nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return "", fmt.Errorf("config: --pprof-listen %q: want HOST:PORT (e.g. 127.0.0.1:6060): %w", addr, err)
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", fmt.Errorf("config: --pprof-listen %q: loopback addresses only (127.0.0.0/8, ::1, localhost)", addr)
	}
	return addr, nil
}
