package gossip

import (
	"errors"
	"testing"
)

// The engine validates only what it reads: a configuration whose node
// settings are wrong makes an Engine (the simulator runs engines alone),
// while Validate and New refuse it, naming every such field. A wrong engine
// field is refused by all three.
func TestConfigSplitValidation(t *testing.T) {
	nodeFields := map[string]func(*Config){
		"GossipDatagramMaxSize": func(c *Config) { c.GossipDatagramMaxSize = -1 },
		"DeliveryBuffer":        func(c *Config) { c.DeliveryBuffer = 0 },
		"SendQueueSize":         func(c *Config) { c.SendQueueSize = 0 },
		"SendQueueBytes":        func(c *Config) { c.SendQueueBytes = c.MaxMessageSize - 1 },
		"PublishQueueBytes":     func(c *Config) { c.PublishQueueBytes = -1 },
		"PublishPendingBytes":   func(c *Config) { c.PublishPendingBytes = -1 },
		"ReconcileInterval":     func(c *Config) { c.ReconcileInterval = 0 },
		"Compression.MinSize":   func(c *Config) { c.Compression.MinSize = -1 },
	}
	cfg := DefaultConfig()
	for _, set := range nodeFields {
		set(&cfg)
	}
	if _, err := NewEngine(EngineOptions[int]{Self: 1, Config: cfg, Seed: 1}); err != nil {
		t.Errorf("NewEngine refused a configuration whose engine fields are valid: %v", err)
	}
	_, newErr := New(cfg, Options[string, []byte]{})
	for name, err := range map[string]error{"Validate": cfg.Validate(), "New": newErr} {
		for field := range nodeFields {
			if !namesField(err, field) {
				t.Errorf("%s: error %v does not name %s", name, err, field)
			}
		}
	}

	engineBad := DefaultConfig()
	engineBad.EagerFanout = 0
	_, engErr := NewEngine(EngineOptions[int]{Self: 1, Config: engineBad, Seed: 1})
	_, newErr = New(engineBad, Options[string, []byte]{})
	for name, err := range map[string]error{"NewEngine": engErr, "Validate": engineBad.Validate(), "New": newErr} {
		if !namesField(err, "EagerFanout") {
			t.Errorf("%s: error %v does not name EagerFanout", name, err)
		}
	}
}

// namesField reports whether err holds a *ConfigError for field.
func namesField(err error, field string) bool {
	if err == nil {
		return false
	}
	multi, ok := err.(interface{ Unwrap() []error })
	if !ok {
		var ce *ConfigError
		return errors.As(err, &ce) && ce.Field == field
	}
	for _, e := range multi.Unwrap() {
		if namesField(e, field) {
			return true
		}
	}
	return false
}
