// Package cliutil holds what stmfadm/sbdadm and itadm share on the command
// line: the -o output option and usage errors.
package cliutil

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// UsageError is a command-line mistake; the CLIs print it with the usage
// and exit with status 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef builds a *UsageError.
func Usagef(format string, args ...any) error { return &UsageError{fmt.Sprintf(format, args...)} }

// OutputFlag is the -o option of the list commands.
func OutputFlag() cli.Flag {
	return &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output format: text (COMSTAR's) or json"}
}

// JSONOutput reports whether -o json was asked for; an unknown format is a
// usage error.
func JSONOutput(c *cli.Context) (bool, error) {
	switch f := strings.ToLower(c.String("output")); f {
	case "", "text":
		return false, nil
	case "json":
		return true, nil
	default:
		return false, Usagef("-o %s: unknown output format (text or json)", f)
	}
}

// WriteJSON writes v indented, with a final newline.
func WriteJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
