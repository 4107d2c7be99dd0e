package config

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestManPageNamesEverySetting(t *testing.T) {
	page := ManPage()
	if !bytes.Contains(page[:min(len(page), 200)], []byte(".TH stmfd 8")) {
		t.Errorf("no .TH stmfd 8 header: %q", page[:min(len(page), 200)])
	}
	newFlagSet(io.Discard).VisitAll(func(f *pflag.Flag) {
		if !mentions(page, "--"+f.Name) {
			t.Errorf("stmfd(8) does not document --%s", f.Name)
		}
		if !bytes.Contains(page, []byte(envName(f.Name))) {
			t.Errorf("stmfd(8) does not name %s", envName(f.Name))
		}
	})
	for _, k := range liveKeys() {
		if !mentions(page, "**"+k+"**") {
			t.Errorf("stmfd(8) SIGNALS does not say %s is reloaded live", k)
		}
	}
}

// mentions finds s in a rendered page: **x** is \fBx\fP in roff, and a
// renderer may escape dashes (\-).
func mentions(page []byte, s string) bool {
	r := strings.ReplaceAll(s, "**", "")
	if strings.HasPrefix(s, "**") {
		r = `\fB` + r + `\fP`
	}
	return bytes.Contains(page, []byte(r)) || bytes.Contains(page, []byte(strings.ReplaceAll(r, "-", `\-`)))
}
