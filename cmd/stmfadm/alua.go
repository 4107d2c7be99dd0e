package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/cliutil"
)

const setALUAStateHelp = `Sets the asymmetric access state (ALUA) of a target port group: the iSCSI portal group
with that portal group tag (1 = the default portal group; itadm list-target -v shows the
tags). The state applies to every logical unit reached through the group's ports. Initiators
get ASYMMETRIC ACCESS STATE CHANGED and re-read REPORT TARGET PORT GROUPS. The state is
saved before the command returns and survives a restart of stmfd.

States (stmf's names such as active/optimized are accepted too):
   active-optimized      all commands; the preferred paths (the default)
   active-nonoptimized   all commands; used when no optimized path is left
   standby               no media access (NOT READY); INQUIRY, REPORT TARGET PORT GROUPS,
                         reservations and mode/log pages still work
   unavailable           only INQUIRY, REPORT LUNS, REQUEST SENSE and REPORT TARGET PORT GROUPS
   transitioning         as unavailable, while a change is in progress

For the secondary side of a pair prefer active-nonoptimized over standby: ESXi (VMW_SATP_ALUA,
MRU or Round Robin) and Linux multipath then send I/O to the optimized paths and fail over to
the non-optimized ones at once, with no state change needed. A standby path takes no I/O
until someone changes its state, so losing the optimized side stops I/O until then.

EXAMPLES:
   stmfadm set-alua-state -g 2 active-nonoptimized
   stmfadm set-alua-state -g 2 standby
   stmfadm list-state`

// addALUACommands adds set-alua-state to stmfadm.
func addALUACommands(app *cli.App, e *env) {
	app.Commands = append(app.Commands, &cli.Command{
		Name:      "set-alua-state",
		Usage:     "set the ALUA access state of a target port group (portal group tag)",
		ArgsUsage: "active-optimized | active-nonoptimized | standby | unavailable | transitioning",
		Flags: []cli.Flag{&cli.StringFlag{Name: "group-name", Aliases: []string{"g"},
			Usage: "target port group: the portal group tag, 1-65535 (required)"}},
		Description: setALUAStateHelp,
		Action:      e.setALUAState,
	})
}

// validStates lists the states for messages.
func validStates() string { return strings.Join(api.ALUAStateNames(), ", ") }

func (e *env) setALUAState(c *cli.Context) error {
	ops, err := operands(c, 1, 1, "state")
	if err != nil {
		return err
	}
	if !c.IsSet("group-name") {
		return cliutil.Usagef("%s: -g, --group-name is required (the target port group tag)", c.Command.Name)
	}
	g := c.String("group-name")
	tag, err := strconv.ParseUint(strings.TrimSpace(g), 10, 32)
	if err != nil || tag < 1 || tag > 0xffff {
		e.errorf("%s: invalid target port group: a portal group tag, 1-65535, is expected", g)
		return errFailed
	}
	state, ok := api.CanonicalALUAState(ops[0])
	if !ok {
		e.errorf("%s: invalid ALUA state (valid: %s)", ops[0], validStates())
		return errFailed
	}
	_, err = e.client.SetALUAState(c.Context, api.SetALUAStateRequest{Tag: int(tag), State: state})
	if err == nil {
		return nil
	}
	switch api.CodeOf(err) {
	case api.CodeTPGTagNotFound:
		e.errorf("%s: target port group not found", g)
		e.detail(err)
	case api.CodeInvalidTPGTag:
		e.errorf("%s: invalid target port group: a portal group tag, 1-65535, is expected", g)
	case api.CodeInvalidALUAState:
		e.errorf("%s: invalid ALUA state (valid: %s)", ops[0], validStates())
	default:
		e.unexpected(err, g)
	}
	return errFailed
}

// writeALUAGroups prints the target port groups after list-state's
// COMSTAR lines: "ALUA Target Port Group <tag>: <state>".
func writeALUAGroups(w io.Writer, groups []api.ALUAGroup) {
	for _, g := range groups {
		fmt.Fprintf(w, "ALUA Target Port Group %d: %s\n", g.Tag, api.ALUAStateLabel(g.State))
	}
}
