// Package builtin names the compressors this module ships (identity, zstd
// and lz4) so that configuration can choose one by name, and builds the
// registry a node reads with. It is a convenience over packages compressor,
// compressor/zstd and compressor/lz4: nothing is registered by importing it.
//
// This package must never import the gossip core or any transport.
package builtin

import (
	"errors"
	"fmt"

	"github.com/plumtree-go/plumtree/compressor"
	"github.com/plumtree-go/plumtree/compressor/lz4"
	"github.com/plumtree-go/plumtree/compressor/zstd"
)

// ErrUnknown is returned (wrapped) by New for a name it does not know.
var ErrUnknown = errors.New("builtin: unknown compressor")

// Names returns the names New accepts, sorted: "identity", "lz4", "zstd".
func Names() []string {
	return []string{compressor.IdentityName, lz4.Name, zstd.Name}
}

// New returns the built-in compressor called name at level. "identity"
// ignores the level; for "zstd" and "lz4" see zstd.New and lz4.New. An
// unknown name gives an error wrapping ErrUnknown.
func New(name string, level int) (compressor.Compressor, error) {
	switch name {
	case compressor.IdentityName:
		return compressor.Identity(), nil
	case zstd.Name:
		c, err := zstd.New(level)
		if err != nil {
			return nil, err
		}
		return c, nil
	case lz4.Name:
		c, err := lz4.New(level)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	return nil, fmt.Errorf("%w %q (known: %q)", ErrUnknown, name, Names())
}

// NewRegistry returns a registry holding cs and every built-in compressor,
// so that a node reads whatever another node of this module sends. A
// compressor in cs with the name and ID of a built-in one takes its place (a
// node then reads with the instance it writes with); one that shares only
// the name or only the ID of a built-in one is refused, as NewRegistry in
// package compressor refuses duplicates.
func NewRegistry(cs ...compressor.Compressor) (*compressor.Registry, error) {
	r, err := compressor.NewRegistry(cs...)
	if err != nil {
		return nil, err
	}
	for _, name := range Names() {
		b, err := New(name, 0)
		if err != nil {
			return nil, err
		}
		if c, ok := r.ByName(name); ok && c.ID() == b.ID() {
			continue // identity, or the caller's own instance
		}
		if err := r.Register(b); err != nil {
			return nil, fmt.Errorf("builtin: %w", err)
		}
	}
	return r, nil
}

// Resolve turns a compression policy by name into what a node needs: the
// compressor called name at level that it writes with (nil for "identity"
// or "": it writes payloads as they are) and a registry of every built-in
// compressor, holding that same instance, that it reads with. An unknown
// name gives an error wrapping ErrUnknown; a level the algorithm refuses,
// its error. Package stack resolves gossip's Config.Compression with it.
func Resolve(name string, level int) (compressor.Compressor, *compressor.Registry, error) {
	if name == "" {
		name = compressor.IdentityName
	}
	w, err := New(name, level)
	if err != nil {
		return nil, nil, err
	}
	if w.ID() == compressor.Identity().ID() {
		r, err := NewRegistry()
		return nil, r, err
	}
	r, err := NewRegistry(w)
	if err != nil {
		return nil, nil, err
	}
	return w, r, nil
}
