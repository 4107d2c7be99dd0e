package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/costar-project/costar/api/cliutil"
)

// The man pages (make man) and the shell completion (contrib/completion)
// come from the command definitions: each names every visible command.
func TestManPageAndCompletionNameEveryCommand(t *testing.T) {
	for _, name := range []string{"stmfadm", "sbdadm"} {
		t.Run(name, func(t *testing.T) {
			var man, comp, errb bytes.Buffer
			if code := run(context.Background(), []string{"/usr/sbin/" + name, cliutil.ManFlag}, strings.NewReader(""), &man, &errb); code != 0 {
				t.Fatalf("%s %s: exit %d: %s", name, cliutil.ManFlag, code, errb.String())
			}
			if !strings.Contains(man.String(), ".TH "+name+" 8") {
				t.Errorf("no .TH %s 8 header in:\n%.300s", name, man.String())
			}
			// urfave/cli's completion looks at os.Args, as it does when
			// the shell runs the binary.
			args := []string{name, "--generate-bash-completion"}
			defer func(saved []string) { os.Args = saved }(os.Args)
			os.Args = args
			if code := run(context.Background(), args, strings.NewReader(""), &comp, &errb); code != 0 {
				t.Fatalf("%s --generate-bash-completion: exit %d: %s", name, code, errb.String())
			}
			words := strings.Fields(comp.String())
			app := newApp(name, &env{})
			n := 0
			for _, c := range app.Commands {
				if c.Hidden {
					continue
				}
				n++
				if !strings.Contains(man.String(), "\n.SH "+c.Name+"\n") {
					t.Errorf("%s(8) has no section for %s", name, c.Name)
				}
				if !contains(words, c.Name) {
					t.Errorf("%s completion does not offer %s (got %v)", name, c.Name, words)
				}
			}
			if n < 3 {
				t.Fatalf("%s has only %d commands: wrong app?", name, n)
			}
		})
	}
}

func contains(words []string, w string) bool {
	for _, x := range words {
		if x == w {
			return true
		}
	}
	return false
}

// Completing after a flag urfave/cli cannot parse offers nothing and
// does not crash.
func TestCompletionAfterBadFlag(t *testing.T) {
	args := []string{"stmfadm", "create-lu", "--s", "--generate-bash-completion"}
	defer func(saved []string) { os.Args = saved }(os.Args)
	os.Args = args
	var out, errb bytes.Buffer
	if code := run(context.Background(), args, strings.NewReader(""), &out, &errb); code != 0 || strings.Contains(errb.String(), "panic") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}
