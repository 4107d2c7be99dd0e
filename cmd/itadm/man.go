package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/costar-project/costar/api/cliutil"
)

// printManPage writes itadm(8) (make man).
func printManPage(app *cli.App, stdout, stderr io.Writer) int {
	page, err := cliutil.ManPage(app,
		`# EXIT STATUS

0 success; a failed subcommand prints "itadm *subcommand* failed with error *N*" and exits N (an errno,
as illumos itadm does); 2 bad command line.`,
		`# ENVIRONMENT

**STMFD_SOCKET**
: management socket of stmfd (else *$STMFD_STATE_DIR/stmfd.sock*, else */var/lib/stmfd/stmfd.sock*).`,
		`# SEE ALSO

**stmfd**(8), **stmfadm**(8), **sbdadm**(8)`)
	if err == nil {
		_, err = stdout.Write(page)
	}
	if err != nil {
		fmt.Fprintf(stderr, "itadm: %v\n", err)
		return 1
	}
	return 0
}
