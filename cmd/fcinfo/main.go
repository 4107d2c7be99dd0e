// Command fcinfo shows costar's Fibre Channel ports as illumos fcinfo
// does for target-mode HBAs: fcinfo hba-port, fcinfo remote-port -p WWN.
// It talks to stmfd over its management socket.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/client"
	"github.com/costar-project/costar/api/cliutil"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const exitUsage = 2

// run executes one fcinfo command line (without the program name).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cl *client.Client
	app := &cli.App{
		Name:                   "fcinfo",
		Usage:                  "show Fibre Channel HBA ports in target mode and their remote ports",
		HideVersion:            true,
		UseShortOptionHandling: true,
		Writer:                 stdout,
		ErrWriter:              stderr,
		ExitErrHandler:         func(*cli.Context, error) {},
		Flags: []cli.Flag{&cli.StringFlag{Name: "socket",
			Usage: "stmfd management socket (default $STMFD_SOCKET, <$STMFD_STATE_DIR>/stmfd.sock, " + client.InstalledSocket + ")"}},
		Before: func(c *cli.Context) error {
			cl = client.New(client.SocketPath(c.String("socket")))
			return nil
		},
		Commands: []*cli.Command{
			{
				Name:      "hba-port",
				Usage:     "list HBA ports (all, or those named)",
				ArgsUsage: "[WWN ...]",
				Flags:     []cli.Flag{cliutil.OutputFlag()},
				Action: func(c *cli.Context) error {
					return hbaPort(c, cl, stdout)
				},
			},
			{
				Name:      "remote-port",
				Usage:     "list the remote ports logged in to an HBA port",
				ArgsUsage: "-p HBA-PORT-WWN [REMOTE-WWN ...]",
				Flags: []cli.Flag{&cli.StringFlag{Name: "port", Aliases: []string{"p"}, Required: true, Usage: "local HBA port WWN"},
					cliutil.OutputFlag()},
				Action: func(c *cli.Context) error {
					return remotePort(c, cl, stdout)
				},
			},
		},
	}
	app.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return &cliutil.UsageError{Msg: err.Error()} }
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
	}
	unknown := false
	app.CommandNotFound = func(_ *cli.Context, cmd string) {
		fmt.Fprintf(stderr, "fcinfo: %s: unknown subcommand (see fcinfo --help)\n", cmd)
		unknown = true
	}
	err := app.RunContext(ctx, append([]string{"fcinfo"}, args...))
	var ue *cliutil.UsageError
	switch {
	case unknown:
		return exitUsage
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "fcinfo: %s\n", ue.Msg)
		return exitUsage
	case errors.Is(err, client.ErrUnavailable):
		fmt.Fprintf(stderr, "fcinfo: stmfd is not running (%v)\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "fcinfo: %v\n", err)
	return 1
}

// normWWN accepts 16 hex digits, with a wwn. prefix or colons.
func normWWN(s string) (string, error) {
	h := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(strings.ToLower(s), "wwn."), ":", ""))
	if len(h) != 16 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", cliutil.Usagef("%s: not a WWN (16 hex digits)", s)
	}
	return h, nil
}

func speed(mbs int) string {
	switch {
	case mbs <= 0:
		return "unknown"
	case mbs%1000 == 0:
		return fmt.Sprintf("%dGb", mbs/1000)
	}
	return fmt.Sprintf("%dMb", mbs)
}

func hbaPort(c *cli.Context, cl *client.Client, w io.Writer) error {
	asJSON, err := cliutil.JSONOutput(c)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, a := range c.Args().Slice() {
		h, err := normWWN(a)
		if err != nil {
			return err
		}
		want[h] = true
	}
	ports, err := cl.ListFCPorts(c.Context)
	if err != nil {
		return err
	}
	out := []api.FCPort{}
	for _, p := range ports {
		if len(want) == 0 || want[p.PortWWN] {
			delete(want, p.PortWWN)
			out = append(out, p)
		}
	}
	for h := range want {
		return fmt.Errorf("%s: no such HBA port", h)
	}
	if asJSON {
		return cliutil.WriteJSON(w, out)
	}
	if len(out) == 0 {
		fmt.Fprintln(w, "No Adapters Found.")
	}
	for _, p := range out {
		fmt.Fprintf(w, "HBA Port WWN: %s\n", p.PortWWN)
		fmt.Fprintf(w, "\tPort Mode: %s\n", p.Mode)
		if p.PortID != "" {
			fmt.Fprintf(w, "\tPort ID: %s\n", strings.TrimLeft(p.PortID, "0"))
		}
		fmt.Fprintf(w, "\tDriver Name: %s\n", p.Driver)
		fmt.Fprintf(w, "\tType: N-port\n")
		fmt.Fprintf(w, "\tState: %s\n", p.State)
		fmt.Fprintf(w, "\tCurrent Speed: %s\n", speed(p.SpeedMbs))
		fmt.Fprintf(w, "\tNode WWN: %s\n", p.NodeWWN)
	}
	return nil
}

func remotePort(c *cli.Context, cl *client.Client, w io.Writer) error {
	asJSON, err := cliutil.JSONOutput(c)
	if err != nil {
		return err
	}
	local, err := normWWN(c.String("port"))
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, a := range c.Args().Slice() {
		h, err := normWWN(a)
		if err != nil {
			return err
		}
		want[h] = true
	}
	ports, err := cl.ListFCPorts(c.Context)
	if err != nil {
		return err
	}
	var port *api.FCPort
	for i := range ports {
		if ports[i].PortWWN == local {
			port = &ports[i]
		}
	}
	if port == nil {
		return fmt.Errorf("%s: no such HBA port", local)
	}
	out := []api.FCRemotePort{}
	for _, r := range port.RemotePorts {
		if len(want) == 0 || want[r.PortWWN] {
			out = append(out, r)
		}
	}
	if asJSON {
		return cliutil.WriteJSON(w, out)
	}
	if len(out) == 0 {
		fmt.Fprintln(w, "No remote ports found.")
	}
	for _, r := range out {
		fmt.Fprintf(w, "Remote Port WWN: %s\n", r.PortWWN)
		fc4 := "none"
		if r.Initiator {
			fc4 = "SCSI"
		}
		fmt.Fprintf(w, "\tActive FC4 Types: %s\n", fc4)
		fmt.Fprintf(w, "\tSCSI Target: no\n")
		fmt.Fprintf(w, "\tPort ID: %s\n", strings.TrimLeft(r.PortID, "0"))
		fmt.Fprintf(w, "\tNode WWN: %s\n", r.NodeWWN)
		fmt.Fprintf(w, "\tLogged In Since: %s\n", r.Since.Format("Mon Jan 02 15:04:05 2006"))
	}
	return nil
}
