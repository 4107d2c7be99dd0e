// Command itadm manages costar's iSCSI port provider the way illumos
// COMSTAR's itadm does: targets, target portal groups, initiator contexts
// (per-initiator CHAP) and defaults. It talks to stmfd over its
// management socket.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/client"
	"github.com/costar-project/costar/api/cliutil"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errno values itadm reports ("itadm <subcommand> failed with error N")
// and exits with, as COMSTAR's does.
const (
	errGeneric = 1
	errENOENT  = 2
	errEIO     = 5
	errEBADF   = 9
	errEFAULT  = 14
	errEBUSY   = 16
	errEEXIST  = 17
	errEINVAL  = 22

	exitUsage = 2
)

// failure is a failed subcommand whose messages were printed; main adds
// "itadm <subcommand> failed with error <code>".
type failure struct{ code int }

func (f *failure) Error() string { return fmt.Sprintf("failed with error %d", f.code) }

// fail prints one message line and returns the failure with code.
func (e *env) fail(code int, format string, args ...any) error {
	fmt.Fprintf(e.stderr, format+"\n", args...)
	return &failure{code: code}
}

// errUnreachable: the daemon could not be reached (message printed).
var errUnreachable = errors.New("stmfd unreachable")

type env struct {
	stdin  *bufio.Reader
	rawIn  io.Reader
	stdout io.Writer
	stderr io.Writer
	client *client.Client
	sub    string // the subcommand running
}

// run executes one itadm command line (without the program name).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: bufio.NewReader(stdin), rawIn: stdin, stdout: stdout, stderr: stderr}
	app := itadmApp(e)
	app.Writer, app.ErrWriter = stdout, stderr
	app.ExitErrHandler = func(*cli.Context, error) {}
	app.UseShortOptionHandling = true
	app.HideVersion = true
	app.Flags = append(app.Flags, &cli.StringFlag{
		Name:  "socket",
		Usage: "stmfd management socket (default $STMFD_SOCKET, <$STMFD_STATE_DIR>/stmfd.sock, " + client.InstalledSocket + ")",
	})
	app.Before = func(c *cli.Context) error {
		e.client = client.New(client.SocketPath(c.String("socket")))
		return nil
	}
	unknown := false
	app.CommandNotFound = func(_ *cli.Context, cmd string) {
		fmt.Fprintf(stderr, "itadm: %s: unknown subcommand (see itadm --help)\n", cmd)
		unknown = true
	}
	app.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return &cliutil.UsageError{Msg: err.Error()} }
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
		action := c.Action
		name := c.Name
		c.Action = func(cc *cli.Context) error {
			e.sub = name
			return action(cc)
		}
	}
	app.EnableBashCompletion = true // contrib/completion
	if cliutil.Completing(args) {
		// urfave/cli v2 panics completing after a flag it cannot parse;
		// a TAB then offers nothing instead of a stack trace.
		defer func() { _ = recover() }()
	}
	if len(args) == 1 && args[0] == cliutil.ManFlag {
		return printManPage(app, stdout, stderr) // man.go
	}
	err := app.RunContext(ctx, append([]string{"itadm"}, args...))
	var f *failure
	var ue *cliutil.UsageError
	switch {
	case unknown:
		return exitUsage
	case err == nil:
		return 0
	case errors.Is(err, errUnreachable):
		return 1
	case errors.As(err, &f):
		fmt.Fprintf(stderr, "itadm %s failed with error %d\n", e.sub, f.code)
		return f.code
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "itadm: %s\n", ue.Msg)
		if u := usageLine(e.sub); u != "" {
			fmt.Fprintf(stderr, "usage: %s\n", u)
		}
		return exitUsage
	}
	fmt.Fprintf(stderr, "itadm: %v\n", err)
	return 1
}

// apiFailure handles errors no subcommand-specific message covers.
func (e *env) apiFailure(err error) error {
	if errors.Is(err, client.ErrUnavailable) {
		fmt.Fprintln(e.stderr, "The iSCSI target service must be online before running this command.")
		fmt.Fprintf(e.stderr, "(%v)\n", err)
		return errUnreachable
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case api.CodeInvalidSecret:
			return e.fail(errEINVAL, "Secret must be between 12 and 255 characters")
		case api.CodeInternal:
			return e.fail(errEIO, "Error: %s", ae.Message)
		}
		return e.fail(errEINVAL, "Error: %s", ae.Message)
	}
	return e.fail(errGeneric, "Error: %v", err)
}
