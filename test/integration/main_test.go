package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/test/harness"
)

const (
	demoIQN       = "iqn.2026-11.org.costar:demo"
	testInitiator = "iqn.2026-11.org.costar:integration"
	gib           = int64(1) << 30
	mib           = int64(1) << 20

	testTimeout = 3 * time.Minute // whole test
)

// suite builds the binaries once for all the tests of this package.
var suite = harness.NewSuite("integration")

func TestMain(m *testing.M) { os.Exit(suite.Main(m)) }

// startDaemon starts stmfd --demo with stateDir and waits until iscsi-inq
// succeeds on the demo LUN.
func startDaemon(ctx context.Context, t *testing.T, stateDir string, extra ...string) *harness.Daemon {
	t.Helper()
	harness.RequireTools(t, "iscsi-inq")
	return suite.Start(ctx, t, stateDir, harness.Options{
		Args: append([]string{"--demo"}, extra...),
		Ready: func(ctx context.Context, d *harness.Daemon) error {
			ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if err := exec.CommandContext(ictx, "iscsi-inq", "-i", testInitiator, demoURL(d)).Run(); err != nil {
				return fmt.Errorf("iscsi-inq on %s: %w", demoURL(d), err)
			}
			return nil
		},
	})
}

// demoURL is the iscsi:// URL of the demo LU.
func demoURL(d *harness.Daemon) string { return d.URL(demoIQN, 0) }

// keyValues parses "Key:value" lines (libiscsi tools' output format).
func keyValues(out string) map[string]string {
	m := make(map[string]string)
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			if _, dup := m[k]; !dup {
				m[k] = strings.TrimSpace(v)
			}
		}
	}
	return m
}

func atoi64(t *testing.T, what, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		t.Fatalf("%s: %q is not a number: %v", what, s, err)
	}
	return n
}

// naaFromInqOutput returns the bytes iscsi-inq printed for the first NAA
// designator of VPD page 0x83. iscsi-inq prints the binary designator with
// %s, so the bytes stop at the first zero byte.
func naaFromInqOutput(out []byte) ([]byte, bool) {
	marker := []byte("Designator Type:(3) NAA\nDesignator:[")
	i := bytes.Index(out, marker)
	if i < 0 {
		return nil, false
	}
	rest := out[i+len(marker):]
	j := bytes.Index(rest, []byte("]\n"))
	if j < 0 {
		return nil, false
	}
	return rest[:j], true
}
