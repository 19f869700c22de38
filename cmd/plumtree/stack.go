package main

import "github.com/plumtree-go/plumtree/stack"

// transports names the network transports the commands can run on.
var transports = stack.Transports
