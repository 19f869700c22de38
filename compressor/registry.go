package compressor

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
)

// Registry maps wire IDs and names to compressors. It always holds Identity.
// Each ID and each name is held by at most one compressor, and a compressor
// stays registered for the Registry's life. A Registry is safe for
// concurrent use.
type Registry struct {
	mu     sync.RWMutex
	byID   map[byte]Compressor
	byName map[string]Compressor
}

// NewRegistry returns a Registry holding Identity and cs. It fails, naming
// the culprit, if a compressor is nil or has an empty name, or if two of them
// (Identity included, so any other compressor with ID 0 or the name
// "identity") share an ID or a name.
func NewRegistry(cs ...Compressor) (*Registry, error) {
	r := &Registry{
		byID:   map[byte]Compressor{0: Identity()},
		byName: map[string]Compressor{IdentityName: Identity()},
	}
	for i, c := range cs {
		if err := r.add(c); err != nil {
			return nil, fmt.Errorf("%w (argument %d)", err, i)
		}
	}
	return r, nil
}

// Register adds c to r, with the same checks as NewRegistry. On error r is
// unchanged.
func (r *Registry) Register(c Compressor) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.add(c)
}

// add adds c; r.mu is held or r is not yet shared.
func (r *Registry) add(c Compressor) error {
	if isNil(c) {
		return errors.New("compressor: nil compressor")
	}
	id, name := c.ID(), c.Name()
	if name == "" {
		return fmt.Errorf("compressor: compressor with ID %d (%T) has an empty name", id, c)
	}
	if old, ok := r.byID[id]; ok {
		return fmt.Errorf("compressor: duplicate ID %d: %q (%T) and %q (%T)", id, old.Name(), old, name, c)
	}
	if old, ok := r.byName[name]; ok {
		return fmt.Errorf("compressor: duplicate name %q: ID %d (%T) and ID %d (%T)", name, old.ID(), old, id, c)
	}
	r.byID[id] = c
	r.byName[name] = c
	return nil
}

// isNil reports whether c is nil or holds a nil pointer, map, slice, channel
// or func, whose methods would most likely panic.
func isNil(c Compressor) bool {
	if c == nil {
		return true
	}
	switch v := reflect.ValueOf(c); v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Chan, reflect.Func, reflect.Interface:
		return v.IsNil()
	}
	return false
}

// ByID returns the compressor with wire ID id.
func (r *Registry) ByID(id byte) (Compressor, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.byID[id]
	return c, ok
}

// ByName returns the compressor named name.
func (r *Registry) ByName(name string) (Compressor, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.byName[name]
	return c, ok
}

// Names returns the names of the registered compressors, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	names := make([]string, 0, len(r.byName))
	for name := range r.byName {
		names = append(names, name)
	}
	r.mu.RUnlock()
	slices.Sort(names)
	return names
}
