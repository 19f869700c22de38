//go:build !linux

package bench

import (
	"context"
	"errors"
	"io"
)

var errNoNetns = errors.New("bench: network namespaces need Linux")

func netnsSupported() bool { return false }

func reexecInNetns(context.Context, io.Writer, io.Writer) error { return errNoNetns }

func loopbackUp() error { return errNoNetns }

func loopbackCounters() (uint64, uint64, error) { return 0, 0, errNoNetns }
