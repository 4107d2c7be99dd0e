// Command stmfadm manages costar's SCSI target framework the way illumos
// COMSTAR's stmfadm does: logical units, host and target groups, views,
// targets. Invoked as "sbdadm" (a symlink to this binary) it is COMSTAR's
// LU provider tool. Both talk to stmfd over its management socket.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/client"
	"github.com/costar-project/costar/api/cliutil"
)

func main() {
	configureHelpFlag()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// configureHelpFlag frees -h, which stmfadm uses for --host-group: help is
// --help only. (urfave/cli keeps the help flag in a package variable, so
// this is done once, by main and TestMain, before any app runs.)
func configureHelpFlag() {
	cli.HelpFlag = &cli.BoolFlag{Name: "help", Usage: "show help"}
}

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the operation failed (messages on stderr)
	exitUsage = 2 // bad command line
)

// errFailed reports a failure whose messages were already printed.
var errFailed = errors.New("failed")

// run executes one command line (args[0] selects the personality) and
// returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	name := filepath.Base(args[0])
	e := &env{name: "stmfadm", stdin: stdin, stdout: stdout, stderr: stderr}
	app := newApp(name, e)
	app.Writer, app.ErrWriter = stdout, stderr
	app.ExitErrHandler = func(*cli.Context, error) {}
	app.UseShortOptionHandling = true
	app.DisableSliceFlagSeparator = true
	app.HideVersion = true
	app.Flags = append(app.Flags, &cli.StringFlag{
		Name:  "socket",
		Usage: "stmfd management socket (default $STMFD_SOCKET, <$STMFD_STATE_DIR>/stmfd.sock, " + client.InstalledSocket + ")",
	})
	app.Before = func(c *cli.Context) error {
		e.client = client.New(client.SocketPath(c.String("socket")))
		return nil
	}
	app.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return &cliutil.UsageError{Msg: err.Error()} }
	app.CommandNotFound = func(_ *cli.Context, cmd string) {
		fmt.Fprintf(stderr, "%s: %s: unknown subcommand (see %s --help)\n", e.name, cmd, e.name)
		e.unknown = true
	}
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
	}
	app.EnableBashCompletion = true // contrib/completion
	if cliutil.Completing(args) {
		// urfave/cli v2 panics completing after a flag it cannot parse;
		// a TAB then offers nothing instead of a stack trace.
		defer func() { _ = recover() }()
	}
	if len(args) == 2 && args[1] == cliutil.ManFlag {
		return printManPage(app, stdout, stderr) // man.go
	}
	err := app.RunContext(ctx, append([]string{e.name}, args[1:]...))
	var ue *cliutil.UsageError
	switch {
	case e.unknown:
		return exitUsage
	case err == nil:
		return exitOK
	case errors.Is(err, errFailed):
		return exitFail
	case errors.Is(err, errChanged):
		return exitChanged
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%s: %s\n", e.name, ue.Msg)
		return exitUsage
	}
	fmt.Fprintf(stderr, "%s: %v\n", e.name, err)
	return exitFail
}

// newApp builds the personality named name (sbdadm, else stmfadm).
func newApp(name string, e *env) *cli.App {
	if name == "sbdadm" {
		e.name = "sbdadm"
		return sbdadmApp(e)
	}
	app := stmfadmApp(e)
	addZFSCommands(app, e) // zvol_verbs.go
	addALUACommands(app, e)
	addApplyCommands(app, e)   // apply.go
	addStatsCommands(app, e)   // stats.go
	addClusterCommands(app, e) // cluster.go
	addProgressFlags(app)      // progress.go
	return app
}

// env is what every command needs: where to print and whom to ask.
type env struct {
	name    string // command name in messages
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	client  *client.Client
	unknown bool // an unknown subcommand was reported
}

// errorf prints one COMSTAR-style error line: "<cmd>: <message>".
func (e *env) errorf(format string, args ...any) {
	fmt.Fprintf(e.stderr, e.name+": "+format+"\n", args...)
}

// unreachable reports a failure to reach stmfd at all; true if it was that.
func (e *env) unreachable(err error) bool {
	if !errors.Is(err, client.ErrUnavailable) {
		return false
	}
	e.errorf("STMF service not found")
	e.errorf("(%v)", err)
	return true
}

// unexpected prints an error no specific message covers.
func (e *env) unexpected(err error, subject string) {
	if e.unreachable(err) {
		return
	}
	var ae *api.Error
	msg := err.Error()
	if errors.As(err, &ae) {
		msg = ae.Message
	}
	if subject != "" {
		e.errorf("%s: unknown error: %s", subject, msg)
	} else {
		e.errorf("unknown error: %s", msg)
	}
}

// detail prints the daemon's explanation after a terse COMSTAR message.
func (e *env) detail(err error) {
	var ae *api.Error
	if errors.As(err, &ae) && ae.Message != "" {
		e.errorf("detail: %s", ae.Message)
	}
}

// operands checks the operand count: min..max (max < 0: unlimited).
func operands(c *cli.Context, min, max int, what string) ([]string, error) {
	a := c.Args().Slice()
	switch {
	case len(a) < min && min == 1 && max == 1:
		return nil, cliutil.Usagef("%s: one operand required: %s", c.Command.Name, what)
	case len(a) < min:
		return nil, cliutil.Usagef("%s: operand required: %s", c.Command.Name, what)
	case max >= 0 && len(a) > max:
		return nil, cliutil.Usagef("%s: too many operands (%s)", c.Command.Name, strings.Join(a, " "))
	}
	return a, nil
}

// failIf turns a failure count into the command's result.
func failIf(n int) error {
	if n > 0 {
		return errFailed
	}
	return nil
}
