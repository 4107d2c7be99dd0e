package cliutil

import (
	"fmt"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/urfave/cli/v2"
)

// ManFlag, as a CLI's only argument, prints its man page (make man): the
// page is generated from the command definitions, so it cannot drift.
const ManFlag = "--generate-man-page"

// Completing reports whether a command line asks for shell completion
// (contrib/completion adds urfave/cli's --generate-bash-completion last).
func Completing(args []string) bool {
	return len(args) > 0 && args[len(args)-1] == "--generate-bash-completion"
}

// ManPage renders app's section 8 man page: urfave/cli's markdown of the
// commands and flags, then the given extra sections ("# FILES\n\n...").
func ManPage(app *cli.App, extra ...string) ([]byte, error) {
	md, err := app.ToMarkdown()
	if err != nil {
		return nil, fmt.Errorf("%s: man page: %w", app.Name, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%% %s 8\n\n%s\n", app.Name, md)
	for _, s := range extra {
		b.WriteString("\n" + strings.TrimSpace(s) + "\n")
	}
	return md2man.Render([]byte(b.String())), nil
}
