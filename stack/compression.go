package stack

import (
	"errors"
	"fmt"

	"github.com/plumtree-go/plumtree/compressor"
	"github.com/plumtree-go/plumtree/compressor/builtin"
	"github.com/plumtree-go/plumtree/gossip"
)

// Compressors resolves a compression policy by name, which package gossip
// does not do (so that the core links no compression library): it returns
// the compressor a node broadcasts with (nil for none) and the registry it
// reads with, which holds every compressor this module ships (identity, zstd
// and lz4), so that the node reads what any node of this module sends. Pass
// them as gossip.Options.Compressor and gossip.Options.Compressors; New
// does. It is builtin.Resolve with errors that name the field: an unknown
// Algorithm, or a Level the algorithm refuses, is a *gossip.ConfigError.
func Compressors(c gossip.Compression) (compressor.Compressor, *compressor.Registry, error) {
	w, r, err := builtin.Resolve(c.Algorithm, c.Level)
	switch {
	case errors.Is(err, builtin.ErrUnknown):
		return nil, nil, &gossip.ConfigError{Field: "Compression.Algorithm",
			Reason: fmt.Sprintf("%q is not one of %q (or \"\" for none)", c.Algorithm, builtin.Names())}
	case err != nil:
		return nil, nil, &gossip.ConfigError{Field: "Compression.Level", Reason: fmt.Sprintf("%d: %v", c.Level, err)}
	}
	return w, r, nil
}

// validate is gossip's Config.Validate plus the compressor names that
// Compressors resolves, every problem in one flat list.
func validate(cfg gossip.Config) error {
	var errs []error
	if err := cfg.Validate(); err != nil {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = append(errs, j.Unwrap()...)
		} else {
			errs = append(errs, err)
		}
	}
	if _, _, err := Compressors(cfg.Compression); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
