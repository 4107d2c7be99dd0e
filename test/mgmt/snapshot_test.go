package mgmt

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/test/harness"
)

// snapshot is every list command's JSON output (and sbdadm's table): the
// whole visible configuration.
func snapshot(t *testing.T, d *harness.Daemon) map[string]string {
	t.Helper()
	s := map[string]string{}
	for _, c := range [][]string{
		{"stmfadm", "list-lu", "-o", "json"},
		{"stmfadm", "list-hg", "-o", "json"},
		{"stmfadm", "list-tg", "-o", "json"},
		{"stmfadm", "list-target", "-o", "json"},
		{"sbdadm", "list-lu"},
		{"itadm", "list-target", "-o", "json"},
		{"itadm", "list-tpg", "-o", "json"},
		{"itadm", "list-initiator", "-o", "json"},
		{"itadm", "list-defaults", "-o", "json"},
	} {
		s[strings.Join(c, " ")] = d.OK(c[0], c[1:]...)
	}
	var lus []api.LU
	if err := json.Unmarshal([]byte(s["stmfadm list-lu -o json"]), &lus); err != nil {
		t.Fatal(err)
	}
	for _, lu := range lus {
		out, errs, code := d.Run("", "stmfadm", "list-view", "-o", "json", "-l", lu.GUID)
		s["list-view "+lu.GUID] = fmt.Sprint(code, out, errs)
	}
	return s
}

func sameSnapshot(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %q changed:\nbefore:\n%s\nafter:\n%s", what, k, v, after[k])
		}
	}
	if len(after) != len(before) {
		t.Errorf("%s: %d outputs before, %d after", what, len(before), len(after))
	}
}
