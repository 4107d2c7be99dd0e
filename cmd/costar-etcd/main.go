// Command costar-etcd is a test helper, not installed by make install: it
// runs an embedded etcd cluster of N members on 127.0.0.1 (for the cluster
// tests and the VM rig, whose image has no etcd), prints the client
// endpoints comma separated on stdout, and stops on SIGINT or SIGTERM.
// SIGUSR1 stops member 0 and SIGUSR2 member 1 (etcd member loss).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/costar-project/costar/internal/cluster/clustertest"
)

func main() {
	n := flag.Int("members", 3, "etcd members")
	dir := flag.String("data-dir", "", "data directory (required)")
	flag.Parse()
	if *dir == "" || *n < 1 || *n > 7 {
		fmt.Fprintln(os.Stderr, "usage: costar-etcd -data-dir DIR [-members 1..7]")
		os.Exit(2)
	}
	e, err := clustertest.Start(*dir, *n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "costar-etcd:", err)
		os.Exit(1)
	}
	fmt.Println(strings.Join(e.Endpoints, ","))
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2)
	for s := range sig {
		switch s {
		case syscall.SIGUSR1:
			e.Stop(0)
			fmt.Fprintln(os.Stderr, "costar-etcd: member 0 stopped")
		case syscall.SIGUSR2:
			e.Stop(1)
			fmt.Fprintln(os.Stderr, "costar-etcd: member 1 stopped")
		default:
			e.Close()
			return
		}
	}
}
