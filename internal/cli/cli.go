// Package cli holds the conventions every plumtree subcommand follows:
// -h prints a description and the flags and exits 0; a usage error (a bad
// flag, a bad value) prints its reason and exits 2; any other error exits
// 1.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// UsageError is a mistake in the command line: the command exits 2.
type UsageError struct {
	Err error
	// Shown is true when the flag package has printed it already.
	Shown bool
}

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError with a formatted reason.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// FlagSet returns a flag set for `plumtree name` whose usage (printed on -h
// and after a bad flag) starts with the description.
func FlagSet(name, description string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintf(w, "usage: plumtree %s [flags]\n\n%s\n\nflags:\n", name, description)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses args with fs: flag.ErrHelp as it is (exit 0), any other
// error as a UsageError, and arguments left over as one too.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &UsageError{Err: err, Shown: true}
	}
	if fs.NArg() > 0 {
		return Usagef("unexpected arguments %q", fs.Args())
	}
	return nil
}

// ExitCode is the exit status for err: 0 for none or flag.ErrHelp, 2 for
// a UsageError, 1 otherwise.
func ExitCode(err error) int {
	var u *UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &u):
		return 2
	}
	return 1
}
