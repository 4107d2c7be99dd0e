package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/costar-project/costar/api/cliutil"
)

// itadm(8) (make man) and the shell completion (contrib/completion) come
// from the command definitions: each names every visible command.
func TestManPageAndCompletionNameEveryCommand(t *testing.T) {
	var man, comp, errb bytes.Buffer
	if code := run(context.Background(), []string{cliutil.ManFlag}, strings.NewReader(""), &man, &errb); code != 0 {
		t.Fatalf("itadm %s: exit %d: %s", cliutil.ManFlag, code, errb.String())
	}
	if !strings.Contains(man.String(), ".TH itadm 8") {
		t.Errorf("no .TH itadm 8 header in:\n%.300s", man.String())
	}
	// urfave/cli's completion looks at os.Args, as when the shell runs it.
	defer func(saved []string) { os.Args = saved }(os.Args)
	os.Args = []string{"itadm", "--generate-bash-completion"}
	if code := run(context.Background(), os.Args[1:], strings.NewReader(""), &comp, &errb); code != 0 {
		t.Fatalf("itadm --generate-bash-completion: exit %d: %s", code, errb.String())
	}
	words := strings.Fields(comp.String())
	n := 0
	for _, c := range itadmApp(&env{}).Commands {
		if c.Hidden {
			continue
		}
		n++
		if !strings.Contains(man.String(), "\n.SH "+c.Name+"\n") {
			t.Errorf("itadm(8) has no section for %s", c.Name)
		}
		found := false
		for _, w := range words {
			found = found || w == c.Name
		}
		if !found {
			t.Errorf("itadm completion does not offer %s (got %v)", c.Name, words)
		}
	}
	if n < 5 {
		t.Fatalf("itadm has only %d commands", n)
	}
}
