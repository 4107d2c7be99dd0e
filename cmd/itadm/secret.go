package main

import (
	"errors"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/costar-project/costar/api"
)

// readLine reads one secret: without echo from a terminal, else one line
// of standard input (scripts, tests).
func (e *env) readLine(prompt string) (string, error) {
	io.WriteString(e.stderr, prompt)
	if f, ok := e.rawIn.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		b, err := term.ReadPassword(int(f.Fd()))
		io.WriteString(e.stderr, "\n")
		return string(b), err
	}
	line, err := e.stdin.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", err
	}
	return strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"), nil
}

// promptSecret is -s / -d: the secret is asked twice and must match.
func (e *env) promptSecret(prompt string) (string, error) {
	s, err := e.readLine(prompt)
	if err != nil {
		return "", e.fail(errEIO, "Could not read secret, %d", errEIO)
	}
	if !api.ValidSecret(s) {
		return "", e.fail(errEINVAL, "Secret must be between 12 and 255 characters")
	}
	again, err := e.readLine("Re-enter secret: ")
	if err != nil {
		return "", e.fail(errEIO, "Could not read secret, %d", errEIO)
	}
	if again != s {
		return "", e.fail(errEINVAL, "Secret validation failed")
	}
	return s, nil
}

// fileSecret is -S / -D: the secret is a regular file's content without
// one trailing newline.
func (e *env) fileSecret(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return "", e.fail(errEBADF, "Invalid secret file %s", path)
	}
	if fi.Size() > 1024 {
		return "", e.fail(errEINVAL, "Secret must be between 12 and 255 characters")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", e.fail(errEIO, "Could not read secret file %s, %d", path, errEIO)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if !api.ValidSecret(s) {
		return "", e.fail(errEINVAL, "Secret must be between 12 and 255 characters")
	}
	return s, nil
}

// secretOption returns the secret given by the -s (prompt) or -S (file)
// style options, or nil when neither was used.
func (e *env) secretOption(prompt bool, file, phrase string) (*string, error) {
	var s string
	var err error
	switch {
	case file != "":
		s, err = e.fileSecret(file)
	case prompt:
		s, err = e.promptSecret(phrase)
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &s, nil
}
