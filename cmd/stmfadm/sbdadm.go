package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/cliutil"
)

const sbdadmDescription = `sbdadm is stmfadm invoked under this name (a symlink): COMSTAR's LU provider
tool, with its table format. GUIDs are shown lower-case. Every list command
also takes -o json. Exit status: 0 success, 1 the operation failed, 2 bad
command line.

EXAMPLES:
   sbdadm create-lu -s 10g /dev/zvol/tank/vm-100-disk-0
   sbdadm list-lu
   sbdadm modify-lu -s 20g 600144f0c0a80101000067a1b2c30001
   sbdadm delete-lu 600144f0c0a80101000067a1b2c30001`

func sbdadmApp(e *env) *cli.App {
	size := func(usage string) cli.Flag {
		return &cli.StringFlag{Name: "disk-size", Aliases: []string{"s"}, Usage: usage}
	}
	return &cli.App{
		Name:        "sbdadm",
		Usage:       "manage SCSI block device logical units (COMSTAR sbd)",
		Description: sbdadmDescription,
		Commands: []*cli.Command{
			{Name: "create-lu", Usage: "create a logical unit", ArgsUsage: "full-path-of-file", Flags: []cli.Flag{size("size with a k/m/g/t/p modifier")}, Action: e.sbdCreate},
			{Name: "delete-lu", Usage: "deregister a logical unit", ArgsUsage: "GUID", Flags: []cli.Flag{&cli.BoolFlag{Name: "keep-views", Aliases: []string{"k"}, Usage: "don't delete view entries related to the LU"}}, Action: e.sbdDelete},
			{Name: "import-lu", Usage: "register a logical unit from the metadata stored with it", ArgsUsage: "file", Action: e.sbdImport},
			{Name: "list-lu", Usage: "list all the exported LUs", Flags: []cli.Flag{cliutil.OutputFlag()}, Action: e.sbdList},
			{Name: "modify-lu", Usage: "resize a logical unit", ArgsUsage: "full-path-of-LU | GUID", Flags: []cli.Flag{size("new size with a k/m/g/t/p modifier (required)")}, Action: e.sbdModify},
		},
	}
}

func (e *env) sbdSize(c *cli.Context) (uint64, bool) {
	if !c.IsSet("disk-size") {
		return 0, true
	}
	n, err := parseSizeArg(c.String("disk-size"))
	if err != nil {
		e.errorf("s: size param invalid")
		return 0, false
	}
	return n, true
}

func (e *env) sbdCreate(c *cli.Context) error {
	ops, err := operands(c, 1, 1, "full path of the file to initialize")
	if err != nil {
		return err
	}
	size, ok := e.sbdSize(c)
	if !ok {
		return errFailed
	}
	var lu api.LU
	req := api.CreateLURequest{DataFile: absPath(ops[0]), Size: size}
	if err := e.longCall(c, "creating LU on "+req.DataFile, api.MethodCreateLU, req, &lu); err != nil { // progress.go
		e.luError(err, ops[0])
		return errFailed
	}
	fmt.Fprintln(e.stdout, "Created the following LU:")
	writeSbdRows(e.stdout, []api.LU{lu})
	return nil
}

func (e *env) sbdImport(c *cli.Context) error {
	ops, err := operands(c, 1, 1, "filename of the LU to import")
	if err != nil {
		return err
	}
	var lu api.LU
	req := api.ImportLURequest{File: absPath(ops[0])}
	if err := e.longCall(c, "importing "+req.File, api.MethodImportLU, req, &lu); err != nil {
		e.luError(err, ops[0])
		return errFailed
	}
	fmt.Fprintln(e.stdout, "Imported the following LU:")
	writeSbdRows(e.stdout, []api.LU{lu})
	return nil
}

func (e *env) sbdDelete(c *cli.Context) error {
	ops, err := operands(c, 1, 1, "GUID of the LU to deregister")
	if err != nil {
		return err
	}
	return e.deleteLUs(c, ops)
}

func (e *env) sbdModify(c *cli.Context) error {
	ops, err := operands(c, 1, 1, "full path of the LU or GUID of a registered LU")
	if err != nil {
		return err
	}
	if !c.IsSet("disk-size") {
		return cliutil.Usagef("modify-lu: -s, --disk-size is required")
	}
	req := api.ModifyLURequest{}
	if strings.HasPrefix(ops[0], "/") {
		req.File = ops[0]
	} else {
		if len(ops[0]) != 32 {
			e.errorf("%s: must be 32 hexadecimal digits", ops[0])
			return errFailed
		}
		req.GUID = ops[0]
	}
	size, ok := e.sbdSize(c)
	if !ok {
		return errFailed
	}
	req.Size = size
	if err := e.longCall(c, "modifying LU "+ops[0], api.MethodModifyLU, req, nil); err != nil {
		e.luError(err, ops[0])
		return errFailed
	}
	return nil
}

// sbdList is sbdadm list-lu: nothing at all when there is no LU, else
// "Found N LU(s)" and the table. LUs whose backing store is not open are
// left out, as COMSTAR's sbd does not know them. Empty operands (Proxmox
// passes one) are ignored.
func (e *env) sbdList(c *cli.Context) error {
	asJSON, err := cliutil.JSONOutput(c)
	if err != nil {
		return err
	}
	for _, a := range c.Args().Slice() {
		if a != "" {
			return cliutil.Usagef("list-lu: no operands expected (%s)", a)
		}
	}
	all, err := e.client.ListLUs(c.Context)
	if err != nil {
		e.unexpected(err, "")
		return errFailed
	}
	lus := []api.LU{}
	for _, lu := range all {
		if lu.Available {
			lus = append(lus, lu)
		}
	}
	if asJSON {
		return cliutil.WriteJSON(e.stdout, lus)
	}
	if len(lus) == 0 {
		return nil
	}
	fmt.Fprintf(e.stdout, "\nFound %d LU(s)\n", len(lus))
	writeSbdRows(e.stdout, lus)
	return nil
}
