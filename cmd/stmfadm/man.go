package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/costar-project/costar/api/cliutil"
)

// printManPage writes stmfadm(8) or sbdadm(8) (make man).
func printManPage(app *cli.App, stdout, stderr io.Writer) int {
	page, err := cliutil.ManPage(app, manSections(app.Name)...)
	if err == nil {
		_, err = stdout.Write(page)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", app.Name, err)
		return exitFail
	}
	return exitOK
}

func manSections(name string) []string {
	return []string{
		`# OUTPUT

The output of the list commands is illumos COMSTAR's, so scripts written for ` + name + ` on illumos work
unchanged; every list command also takes **-o json**.`,
		`# EXIT STATUS

0 success, 1 the operation failed (messages on standard error), 2 bad command line.`,
		`# ENVIRONMENT

**STMFD_SOCKET**
: management socket of stmfd (else *$STMFD_STATE_DIR/stmfd.sock*, else */var/lib/stmfd/stmfd.sock*).`,
		`# SEE ALSO

**stmfd**(8), **stmfadm**(8), **sbdadm**(8), **itadm**(8)`,
	}
}
